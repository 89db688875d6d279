"""Loading plugins from a config: init order, failures, required plugins, configs, closing."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from contentd.config import Config, ConfigError, parse
from contentd.content.errors import InvalidArgument, NotFound
from contentd.plugins import InitContext, Registration, Registry, SkipPlugin
from contentd.plugins.loader import (
    PluginLoadError,
    close_plugins,
    decode_plugin_configs,
    load_plugins,
    normalize,
)


@dataclass(frozen=True)
class Knobs:
    size: int = 1
    name: str = "x"
    ratio: float = 0.5
    tags: list[str] = dataclasses.field(default_factory=list)


class Thing:
    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name

    def close(self) -> None:
        self.log.append(f"close {self.name}")


def _config(tmp_path: Path, text: str = "version = 2\n") -> Config:
    config = parse(text)
    return dataclasses.replace(config, root=str(tmp_path / "root"), state=str(tmp_path / "state"))


def _registry(log: list[str]) -> Registry:
    def ok(name: str, **exports: str):  # type: ignore[no-untyped-def]
        def init(ic: InitContext) -> object:
            log.append(f"init {name}")
            ic.exports.update(exports)
            return Thing(log, name)

        return init

    def failing(ic: InitContext) -> object:
        log.append("init broken")
        raise InvalidArgument("broken on purpose")

    def skipping(ic: InitContext) -> object:
        raise SkipPlugin("not on this system")

    def needs_store(ic: InitContext) -> object:
        store = ic.get("test.store.v1")
        log.append(f"init user of {store.name}")  # type: ignore[attr-defined]
        assert isinstance(ic.config, Knobs)
        log.append(f"knobs size={ic.config.size}")
        return Thing(log, "user")

    return Registry(
        [
            Registration("test.user.v1", "user", needs_store, ("test.store.v1",), Knobs()),
            Registration("test.store.v1", "broken", failing),
            Registration("test.store.v1", "good", ok("good", where="here")),
            Registration("test.extra.v1", "skipper", skipping),
        ]
    )


def test_failed_init_is_recorded_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    caplog.set_level(logging.INFO)
    loaded = load_plugins(_config(tmp_path), _registry(log))
    assert log == ["init broken", "init good", "init user of good", "knobs size=1"]
    by_uri = {p.uri: p for p in loaded.plugins}
    assert list(by_uri) == [
        "test.store.v1.broken",
        "test.store.v1.good",
        "test.user.v1.user",
        "test.extra.v1.skipper",
    ]
    broken = by_uri["test.store.v1.broken"]
    assert isinstance(broken.error, InvalidArgument) and broken.instance is None
    assert by_uri["test.store.v1.good"].meta.exports == {"where": "here"}
    assert isinstance(by_uri["test.extra.v1.skipper"].error, SkipPlugin)
    assert "failed to load plugin test.store.v1.broken" in caplog.text
    assert 'skip loading plugin "test.extra.v1.skipper"' in caplog.text
    close_plugins(loaded.plugins)
    assert log[-2:] == ["close user", "close good"]


def test_plugin_config_is_decoded_from_its_table(tmp_path: Path) -> None:
    log: list[str] = []
    config = _config(
        tmp_path, 'version = 2\n[plugins."test.user.v1.user"]\nsize = 7\ntags = ["a"]\n'
    )
    registry = _registry(log)
    configs = decode_plugin_configs(config, registry)
    assert configs == {"test.user.v1.user": Knobs(size=7, tags=["a"])}
    load_plugins(config, registry, configs)
    assert "knobs size=7" in log


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("sise = 7", 'plugins."test.user.v1.user".sise: unknown key'),
        ('size = "7"', 'plugins."test.user.v1.user".size: expected an integer, got a string'),
        ("ratio = true", 'plugins."test.user.v1.user".ratio: expected a number, got a boolean'),
        ("tags = [1]", 'plugins."test.user.v1.user".tags[0]: expected a string'),
    ],
)
def test_bad_plugin_config_names_the_key(tmp_path: Path, table: str, message: str) -> None:
    config = _config(tmp_path, f'version = 2\n[plugins."test.user.v1.user"]\n{table}\n')
    with pytest.raises(ConfigError) as info:
        decode_plugin_configs(config, _registry([]))
    assert message in str(info.value)


def test_table_for_a_plugin_without_config_is_an_error(tmp_path: Path) -> None:
    config = _config(tmp_path, 'version = 2\n[plugins."test.store.v1.good"]\nx = 1\n')
    with pytest.raises(ConfigError, match=r'plugins\."test.store.v1.good"\.x: unknown key'):
        decode_plugin_configs(config, _registry([]))


def test_required_plugin_failure_is_fatal(tmp_path: Path) -> None:
    log: list[str] = []
    config = _config(tmp_path, 'version = 2\nrequired_plugins = ["test.store.v1.broken"]\n')
    with pytest.raises(
        PluginLoadError, match=r"load required plugin test\.store\.v1\.broken"
    ) as info:
        load_plugins(config, _registry(log))
    # what loaded before is handed back so that it can be closed
    assert [p.uri for p in info.value.plugins] == ["test.store.v1.broken"]


def test_required_plugin_that_never_loads_is_fatal(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        'version = 2\nrequired_plugins = ["test.store.v1.good"]\n'
        'disabled_plugins = ["test.store.v1.good"]\n',
    )
    with pytest.raises(PluginLoadError, match=r"required plugin \['test.store.v1.good'\] not"):
        load_plugins(config, _registry([]))


def test_required_plugin_that_loads_is_fine(tmp_path: Path) -> None:
    config = _config(tmp_path, 'version = 2\nrequired_plugins = ["test.store.v1.good"]\n')
    loaded = load_plugins(config, _registry([]))
    assert loaded.plugins.get("test.store.v1") is not None


def test_disabled_plugin_is_absent_and_get_reports_not_found(tmp_path: Path) -> None:
    log: list[str] = []
    config = _config(
        tmp_path, 'version = 2\ndisabled_plugins = ["test.store.v1.good", "test.store.v1.broken"]\n'
    )
    loaded = load_plugins(config, _registry(log))
    user = next(p for p in loaded.plugins if p.id == "user")
    assert isinstance(user.error, NotFound)
    assert "no plugins registered for test.store.v1" in str(user.error)


def test_version_1_config_lists_ids(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        'disabled_plugins = ["broken", "nosuch"]\nrequired_plugins = ["good"]\n'
        "[plugins.user]\nsize = 3\n",
    )
    assert config.version == 1
    warnings: list[str] = []
    normalized = normalize(config, _registry([]), warnings)
    assert normalized.version == 2
    assert normalized.disabled_plugins == ["test.store.v1.broken"]
    assert normalized.required_plugins == ["test.store.v1.good"]
    assert normalized.plugins == {"test.user.v1.user": {"size": 3}}
    assert any("'nosuch'" in w for w in warnings)
    log: list[str] = []
    load_plugins(normalized, _registry(log))
    assert "init broken" not in log and "knobs size=3" in log


def test_version_2_unknown_names_are_reported(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        'version = 2\ndisabled_plugins = ["test.nosuch.v1.x"]\n'
        '[plugins."test.other.v1.y"]\na = 1\n',
    )
    warnings: list[str] = []
    assert normalize(config, _registry([]), warnings) is config
    assert len(warnings) == 2
