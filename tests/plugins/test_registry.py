"""The plugin registry: registration rules, initialisation order, lookups (spec §7)."""

from __future__ import annotations

from importlib import metadata

import pytest

from contentd.content.errors import AlreadyExists, InvalidArgument, NotFound
from contentd.plugins import (
    ALL,
    InitContext,
    Plugin,
    PluginRegistrationError,
    PluginSet,
    Registration,
    Registry,
    id_filter,
    uri_filter,
)
from contentd.plugins.context import Meta
from contentd.plugins.entrypoints import ENTRY_POINT_GROUP, _may_declare_plugins, discover


def _noop(ic: InitContext) -> object:
    return object()


def reg(type: str, id: str, *requires: str, disable: bool = False) -> Registration:
    return Registration(type, id, _noop, requires=requires, disable=disable)


def uris(registrations: list[Registration]) -> list[str]:
    return [r.uri for r in registrations]


def test_uri_is_type_dot_id() -> None:
    assert reg("io.containerd.content.v1", "content").uri == "io.containerd.content.v1.content"


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        (reg("", "x"), "plugin: no type"),
        (reg("t.v1", ""), "plugin: no id"),
        (reg("t.v1", "x", ALL, "other"), "invalid requires"),
    ],
)
def test_invalid_registrations_are_refused(registration: Registration, message: str) -> None:
    with pytest.raises(PluginRegistrationError, match=message) as info:
        Registry([registration])
    assert isinstance(info.value, InvalidArgument)


def test_duplicate_uri_is_refused() -> None:
    registry = Registry([reg("t.v1", "x")])
    with pytest.raises(AlreadyExists, match=r"t\.v1\.x: plugin: id already registered"):
        registry.register(reg("t.v1", "x", "other"))
    registry.register(reg("u.v1", "x"))  # same id, other type: fine
    assert len(registry) == 2


def test_requirements_come_first_depth_first_each_once() -> None:
    registry = Registry(
        [
            reg("grpc", "content", "service"),
            reg("service", "content", "metadata", "event"),
            reg("metadata", "db", "content"),
            reg("content", "local"),
            reg("content", "proxy"),
            reg("event", "exchange"),
            reg("grpc", "version"),
        ]
    )
    assert uris(registry.graph()) == [
        "content.local",
        "content.proxy",
        "metadata.db",
        "event.exchange",
        "service.content",
        "grpc.content",
        "grpc.version",
    ]


def test_disabled_plugins_are_filtered_before_ordering() -> None:
    registry = Registry(
        [
            reg("metadata", "db", "content"),
            reg("content", "local"),
            reg("content", "proxy"),
            reg("x", "off", disable=True),
        ]
    )
    assert uris(registry.graph(uri_filter(["content.local"]))) == ["content.proxy", "metadata.db"]
    # version-1 configs disable by id: every plugin with that id goes
    assert uris(registry.graph(id_filter(["local", "db"]))) == ["content.proxy"]
    # a plugin whose requirement is disabled still loads (its init decides)
    assert uris(registry.graph(uri_filter(["content.local", "content.proxy"]))) == ["metadata.db"]


def test_star_requires_every_other_enabled_plugin() -> None:
    registry = Registry([reg("a", "1", ALL), reg("b", "2"), reg("c", "3", "b")])
    assert uris(registry.graph()) == ["b.2", "c.3", "a.1"]


def test_cycles_terminate() -> None:
    registry = Registry([reg("a", "1", "b"), reg("b", "2", "a")])
    assert sorted(uris(registry.graph())) == ["a.1", "b.2"]


def _plugin(type: str, id: str, instance: object = None, error: Exception | None = None) -> Plugin:
    return Plugin(reg(type, id), None, Meta(), instance, error)


def test_get_prefers_the_first_plugin_that_initialised() -> None:
    plugins = PluginSet()
    plugins.add(_plugin("content", "broken", error=InvalidArgument("boom")))
    plugins.add(_plugin("content", "a", instance="A"))
    plugins.add(_plugin("content", "b", instance="B"))
    assert plugins.get("content") == "A"
    assert list(plugins.get_by_type("content")) == ["broken", "a", "b"]
    assert plugins.get_by_id("content", "b") == "B"
    with pytest.raises(InvalidArgument, match="boom"):
        plugins.get_by_id("content", "broken")
    with pytest.raises(NotFound, match="no content plugins with id zzz"):
        plugins.get_by_id("content", "zzz")
    with pytest.raises(NotFound, match="no plugins registered for metadata"):
        plugins.get("metadata")
    with pytest.raises(AlreadyExists):
        plugins.add(_plugin("content", "a", instance="again"))


def test_get_raises_the_error_when_every_plugin_of_the_type_failed() -> None:
    plugins = PluginSet()
    plugins.add(_plugin("content", "x", error=InvalidArgument("first")))
    plugins.add(_plugin("content", "y", error=InvalidArgument("second")))
    with pytest.raises(InvalidArgument, match="first"):
        plugins.get("content")


def test_init_context_directories_and_exports(tmp_path: object) -> None:
    registration = reg("io.containerd.content.v1", "content")
    ic = InitContext(registration, PluginSet(), root="/r", state="/s", address="/a.sock")
    assert ic.root == "/r/io.containerd.content.v1.content"
    assert ic.state == "/s/io.containerd.content.v1.content"
    assert ic.address == "/a.sock"
    ic.exports["root"] = ic.root
    assert ic.meta.exports == {"root": "/r/io.containerd.content.v1.content"}


# -- entry points -------------------------------------------------------------------


def one_registration() -> Registration:
    return reg("io.example.v1", "one")


def two_registrations() -> list[Registration]:
    return [reg("io.example.v1", "two"), reg("io.example.v1", "three")]


def not_a_registration() -> object:
    return ["nope"]


def _ep(name: str, attr: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name, f"{__name__}:{attr}", ENTRY_POINT_GROUP)


def test_entry_points_give_registrations_and_report_failures() -> None:
    found, errors = discover(
        [
            _ep("one", "one_registration"),
            _ep("many", "two_registrations"),
            _ep("bad", "not_a_registration"),
            _ep("missing", "no_such_function"),
        ]
    )
    assert [r.uri for r in found] == [
        "io.example.v1.two",
        "io.example.v1.three",
        "io.example.v1.one",
    ]
    assert {r.origin for r in found} == {"entrypoint many", "entrypoint one"}
    assert sorted(e.name for e in errors) == ["bad", "missing"]
    assert "not Registration" in next(e.error for e in errors if e.name == "bad")


def test_entry_point_fast_path_reads_entry_points_files(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    site = root / "site"
    (site / "plain-1.0.dist-info").mkdir(parents=True)
    (site / "plain-1.0.dist-info" / "entry_points.txt").write_text(
        "[console_scripts]\nplain = plain:main\n"
    )
    assert not _may_declare_plugins([str(site), str(root / "missing")])
    (site / "plug-1.0.dist-info").mkdir()
    (site / "plug-1.0.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nplug = plug:registrations\n"
    )
    assert _may_declare_plugins([str(site)])
