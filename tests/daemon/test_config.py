"""Configuration: TOML parsing, errors that name the key, defaults, ``contentd config``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from contentd.cli import main
from contentd.config import (
    DEFAULT_ADDRESS,
    DEFAULT_HEADERLESS_NAMESPACE,
    Config,
    ConfigError,
    ProxyPlugin,
    default_config,
    from_table,
    parse,
    render,
    to_table,
)
from contentd.daemon.setup import Overrides, prepare, render_effective
from contentd.plugins.builtin import GCSchedulerConfig, MetadataConfig

META = "io.containerd.metadata.v1.sqlite"
GC = "io.containerd.gc.v1.scheduler"
S3 = "io.contentd.content.v1.s3"
PG = "io.contentd.metadata.v1.postgres"
FSCK = "io.containerd.grpc.v1.fsck"


def test_defaults() -> None:
    config = default_config()
    assert config.version == 2
    assert config.root == "/var/lib/contentd"
    assert config.state == "/run/contentd"
    assert config.grpc.address == DEFAULT_ADDRESS == "/run/contentd/contentd.sock"
    assert config.grpc.max_recv_message_size == config.grpc.max_send_message_size == 16 << 20
    assert config.grpc.headerless_namespace == DEFAULT_HEADERLESS_NAMESPACE == "containerd-proxy"
    assert config.disabled_plugins == [] and config.required_plugins == []


def test_full_config_parses() -> None:
    config = parse(
        """
version = 2
root = "/srv/contentd"
state = "/run/x"
disabled_plugins = ["io.containerd.content.v1.content"]
required_plugins = ["io.containerd.grpc.v1.content"]

[grpc]
  address = "/run/x/x.sock"
  uid = 10
  gid = 20
  max_recv_message_size = 1048576
  headerless_namespace = ""

[debug]
  level = "debug"
  format = "json"

[proxy_plugins.remote]
  type = "content"
  address = "/run/remote.sock"

[proxy_plugins.other]
  type = "io.containerd.content.v1"
  address = "unix:///run/other.sock"

[plugins."io.containerd.metadata.v1.sqlite"]
  content_sharing_policy = "isolated"
"""
    )
    assert config.root == "/srv/contentd"
    assert (config.grpc.uid, config.grpc.gid) == (10, 20)
    assert config.grpc.max_recv_message_size == 1 << 20
    assert config.grpc.max_send_message_size == 16 << 20
    assert config.grpc.headerless_namespace == ""
    assert config.debug.level == "debug" and config.debug.format == "json"
    assert config.proxy_plugins == {
        "remote": ProxyPlugin("content", "/run/remote.sock"),
        "other": ProxyPlugin("io.containerd.content.v1", "unix:///run/other.sock"),
    }
    assert config.plugins == {META: {"content_sharing_policy": "isolated"}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('version = 2\nroots = "/x"', "roots: unknown key"),
        ("version = 2\n[grpc]\nuid = 'zero'", "grpc.uid: expected an integer, got a string"),
        ("version = 2\n[grpc]\nuid = true", "grpc.uid: expected an integer, got a boolean"),
        ("version = 2\nroot = 1", "root: expected a string, got an integer"),
        ("version = 2\ndisabled_plugins = 'x'", "disabled_plugins: expected an array of strings"),
        ("version = 2\ndisabled_plugins = [1]", "disabled_plugins[0]: expected a string"),
        ("version = 2\ngrpc = 1", "grpc: expected a table, got an integer"),
        ("version = 2\n[grpc]\nadress = '/x'", "grpc.adress: unknown key"),
        ("version = 3", "version: unsupported config version 3"),
        (
            "version = 2\ndisabled_plugins = ['content']",
            "disabled_plugins: invalid disabled plugin URI 'content'",
        ),
        (
            "version = 2\n[proxy_plugins.p]\ntype = 'blobs'\naddress = '/s'",
            "proxy_plugins.p.type: unknown proxy plugin type 'blobs'",
        ),
        (
            "version = 2\n[proxy_plugins.p]\ntype = 'snapshot'\naddress = '/s'",
            "proxy_plugins.p.type: snapshot proxies are not supported",
        ),
        ("version = 2\n[proxy_plugins.p]\ntype = 'content'", "proxy_plugins.p.address: must not"),
        ("version = 2\n[proxy_plugins.p]\ntipe = 'content'", "proxy_plugins.p.tipe: unknown key"),
        (
            "version = 2\n[proxy_plugins.content]\ntype = 'content'\naddress = '/s'",
            "proxy_plugins.content: the name 'content' is taken",
        ),
        ("version = 2\n[grpc]\nheaderless_namespace = 'a/b'", "grpc.headerless_namespace"),
        ("version = 2\n[grpc]\nengine = 'h2o'", "grpc.engine: unknown engine 'h2o'"),
        (
            "version = 2\n[headerless_listeners.n]\nnamespace = 'x'",
            "headerless_listeners.n.address",
        ),
        (
            "version = 2\n[headerless_listeners.n]\naddress = '/run/contentd/contentd.sock'",
            "headerless_listeners.n.address: '/run/contentd/contentd.sock' is already in use",
        ),
        (
            "version = 2\n[headerless_listeners.n]\naddress = '/a'\nnamespace = 'x y'",
            "headerless_listeners.n.namespace: identifier",
        ),
        ("version = 2\n[debug]\nlevel = 'loud'", "debug.level: unknown level 'loud'"),
        ("version = 2\nroot = ", "invalid TOML"),
    ],
)
def test_errors_name_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, "c.toml")
    assert expected in str(info.value)
    assert str(info.value).startswith("c.toml: ")


def test_containerd_settings_contentd_ignores_are_warnings() -> None:
    warnings: list[str] = []
    parse(
        "version = 2\noom_score = -999\nimports = []\n[metrics]\naddress = ''\n"
        "[grpc]\ntcp_address = ''\n[debug]\naddress = ''\n",
        warnings=warnings,
    )
    assert sorted(w.split()[0] for w in warnings) == [
        "debug.address",
        "grpc.tcp_address",
        "imports",
        "metrics",
        "oom_score",
    ]


def test_version_defaults_to_1_like_containerd() -> None:
    assert parse("").version == 1
    assert parse('disabled_plugins = ["content"]').disabled_plugins == ["content"]


def test_render_round_trips_the_defaults() -> None:
    text = render(to_table(default_config()))
    assert from_table(tomllib.loads(text)) == default_config()


def test_render_quotes_keys_and_escapes_values() -> None:
    table = {
        "plugins": {"io.containerd.x.v1.y": {"s": 'a "q" \\ \n', "f": 1.0, "b": True}},
        "n": [1, 2],
    }
    assert tomllib.loads(render(table)) == table
    assert '[plugins."io.containerd.x.v1.y"]' in render(table)


def test_effective_config_decodes_every_plugin_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f'version = 2\n[plugins."{GC}"]\nschedule_delay = "1s"\nmutation_threshold = 5\n'
    )
    effective = prepare(str(path), use_default_path=False, entry_points=False)
    assert effective.plugin_configs[META] == MetadataConfig()
    assert effective.plugin_configs[GC] == GCSchedulerConfig(
        schedule_delay="1s", mutation_threshold=5
    )
    dumped = tomllib.loads(render_effective(effective))
    assert dumped["plugins"][GC]["schedule_delay"] == "1s"
    assert dumped["plugins"][META] == {"content_sharing_policy": "shared"}


def test_bad_duration_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'version = 2\n[plugins."{GC}"]\nstartup_delay = "soon"\n')
    with pytest.raises(ConfigError, match=r'plugins\."io.containerd.gc.v1.scheduler": startup'):
        prepare(str(path), use_default_path=False, entry_points=False)


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f'version = 2\nroot = "/from/file"\n[grpc]\naddress = "/f.sock"\n'
        f'[plugins."{META}"]\ncontent_sharing_policy = "shared"\n'
    )
    effective = prepare(
        str(path),
        Overrides(
            root=str(tmp_path / "r"),
            address="/o.sock",
            content_sharing_policy="isolated",
            log_level="debug",
        ),
        use_default_path=False,
        entry_points=False,
    )
    config: Config = effective.config
    assert config.root == str(tmp_path / "r")
    assert config.grpc.address == "/o.sock"
    assert config.debug.level == "debug"
    assert effective.plugin_configs[META] == MetadataConfig("isolated")


def test_version_1_file_is_normalised(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'disabled_plugins = ["content"]\n[plugins.sqlite]\ncontent_sharing_policy = "isolated"\n'
    )
    effective = prepare(str(path), use_default_path=False, entry_points=False)
    # containerd's quirk: an id names every plugin with that id (local store and gRPC service)
    assert sorted(effective.config.disabled_plugins) == [
        "io.containerd.content.v1.content",
        "io.containerd.grpc.v1.content",
    ]
    assert effective.plugin_configs[META] == MetadataConfig("isolated")


def test_proxy_plugins_are_registered(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('version = 2\n[proxy_plugins.remote]\ntype = "content"\naddress = "/r.sock"\n')
    effective = prepare(str(path), use_default_path=False, entry_points=False)
    registration = effective.registry.get("io.containerd.content.v1.remote")
    assert registration is not None and registration.origin == "proxy_plugins.remote"


def test_cli_config_default_prints_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "default"]) == 0
    out = capsys.readouterr().out
    table = tomllib.loads(out)
    assert table["version"] == 2
    assert table["grpc"]["address"] == DEFAULT_ADDRESS
    assert table["plugins"][META] == {"content_sharing_policy": "shared"}
    assert table["plugins"][GC]["startup_delay"] == "100ms"
    assert table["plugins"][FSCK] == {
        "scrub_interval": "24h",
        "scrub_bytes_per_second": 16 << 20,
        "scrub_startup_delay": "1m",
    }
    plugins = table.pop("plugins")
    assert set(plugins) == {META, GC, S3, PG, FSCK}
    assert plugins[PG]["dsn"] == ""  # not configured: the plugin skips itself
    assert plugins[S3]["bucket"] == ""  # not configured: the plugin skips itself
    assert from_table(table) == default_config()


def test_cli_config_dump_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text('version = 2\nroot = "/elsewhere"\n')
    assert main(["config", "dump", "--config", str(path)]) == 0
    assert tomllib.loads(capsys.readouterr().out)["root"] == "/elsewhere"
    path.write_text('version = 2\n[grpc]\nuid = "root"\n')
    assert main(["config", "dump", "--config", str(path)]) == 2
    assert "grpc.uid: expected an integer" in capsys.readouterr().err
    assert main(["config", "dump", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_cli_config_dump_takes_serves_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('version = 2\nroot = "/elsewhere"\n')
    flags = ["--root", str(tmp_path / "r"), "--state", str(tmp_path / "s"), "-a", "/tmp/x.sock"]
    flags += ["--content-sharing-policy", "isolated", "--log-level", "debug"]
    assert main(["config", "dump", "--config", str(path), *flags]) == 0
    table = tomllib.loads(capsys.readouterr().out)
    # the flags win over the file, as they do for serve
    assert table["root"] == str(tmp_path / "r") and table["state"] == str(tmp_path / "s")
    assert table["grpc"]["address"] == "/tmp/x.sock" and table["debug"]["level"] == "debug"
    assert table["plugins"][META]["content_sharing_policy"] == "isolated"


def test_cli_version(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # the client's version is printed; no daemon answers at the address: exit 1
    assert main(["-a", str(tmp_path / "none.sock"), "version"]) == 1
    assert capsys.readouterr().out.startswith("contentd 0.1.0")


def test_grpc_engine_option() -> None:
    from contentd.config.model import DEFAULT_GRPC_ENGINE, GRPC_ENGINES
    from contentd.daemon.engines import DEFAULT_ENGINE, ENGINES

    assert (GRPC_ENGINES, DEFAULT_GRPC_ENGINE) == (ENGINES, DEFAULT_ENGINE)
    assert default_config().grpc.engine == DEFAULT_ENGINE
    assert parse("version = 2\n[grpc]\nengine = 'grpcio'").grpc.engine == "grpcio"
    assert 'engine = "contentd"' in render(to_table(default_config()))
