"""``contentd serve``, ``contentd config default|dump`` and ``contentd version``.

    contentd serve [--config FILE] [--root DIR] [--state DIR] [--address SOCK]
                   [--content-sharing-policy shared|isolated] [--log-level L]
    contentd config default          the built-in defaults, as TOML
    contentd config dump [--config]  the effective configuration, as TOML
    contentd version                 this client's version, and the server's if one answers

Heavy modules are imported inside the handlers, so ``contentd --help`` is quick.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from contentd.cli.parser import add_command

if TYPE_CHECKING:
    from contentd.cli.context import Context
    from contentd.daemon.setup import Overrides

__all__ = ["EXIT_CONFIG", "add_commands", "run_version"]

_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
#: exit status for a configuration that cannot be used
EXIT_CONFIG = 2


def _add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="config file (default: /etc/contentd/config.toml if it exists)",
    )


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """``serve``'s flags (``config dump`` takes them too, to show what serve would use)."""
    _add_config_flag(parser)
    parser.add_argument("--root", metavar="DIR", help="persistent state (config: root)")
    parser.add_argument("--state", metavar="DIR", help="runtime state (config: state)")
    parser.add_argument(
        "--address",
        "-a",
        dest="serve_address",
        metavar="SOCK",
        help="unix socket (config: grpc.address)",
    )
    parser.add_argument(
        "--content-sharing-policy",
        choices=("shared", "isolated"),
        help='metadata content sharing (config: plugins."io.containerd.metadata.v1.sqlite")',
    )
    parser.add_argument(
        "--log-level",
        "-l",
        choices=_LEVELS,
        metavar="LEVEL",
        help="log level (config: debug.level)",
    )


def _overrides(args: argparse.Namespace) -> Overrides:
    from contentd.daemon.setup import Overrides

    return Overrides(
        root=args.root,
        state=args.state,
        address=args.serve_address,
        content_sharing_policy=args.content_sharing_policy,
        log_level=args.log_level,
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = add_command(
        commands,
        "serve",
        help="run the daemon (containerd's content, leases, namespaces, events, ... services)",
        description="Run the daemon in the foreground; SIGTERM or SIGINT stop it gracefully.",
        example=(
            "contentd serve --root var/lib/contentd --state var/run/contentd "
            "--address var/run/contentd.sock"
        ),
        handler=run_serve,
        client=False,
    )
    _add_serve_flags(serve)

    config = add_command(
        commands,
        "config",
        help="show the configuration",
        example="contentd config dump --config /etc/contentd/config.toml",
        client=False,
    )
    config.set_defaults(handler=None, help_parser=config)
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    add_command(
        config_commands,
        "default",
        help="print the default configuration",
        example="contentd config default > /etc/contentd/config.toml",
        handler=run_config_default,
        client=False,
    )
    dump = add_command(
        config_commands,
        "dump",
        help="print the effective configuration",
        description=(
            "Print the configuration `contentd serve` would run with, given the same flags."
        ),
        example="contentd config dump --config /etc/contentd/config.toml --root /srv/contentd",
        handler=run_config_dump,
        client=False,
    )
    _add_serve_flags(dump)

    add_command(
        commands,
        "version",
        help="print the client's version, and the server's if one answers",
        example="contentd version",
        handler=run_version,
    )


def _error(message: str) -> None:
    print(f"contentd: {message}", file=sys.stderr)


# -- version -----------------------------------------------------------------------------


def client_version() -> tuple[str, str]:
    from contentd import __version__
    from contentd.revision import git_revision

    return __version__, git_revision()


def _variant() -> str:
    """Which variant of the compiled modules this process runs (contentd._compiled)."""
    from contentd._compiled import variant

    return variant().describe()


def print_client_version() -> int:
    version, revision = client_version()
    print(f"contentd {version}{' ' + revision if revision else ''} ({_variant()})")
    return 0


def _server_version(ctx: Context) -> tuple[str, str]:
    from google.protobuf import empty_pb2

    from contentd.api._pb.containerd.services.version.v1 import version_pb2

    response = ctx.quick_call(
        "/containerd.services.version.v1.Version/Version",
        empty_pb2.Empty(),
        version_pb2.VersionResponse,
        timeout=10,
    )
    return response.version, response.revision


def run_version(ctx: Context) -> int:
    """The client line first (``contentd <version> <revision>``), then the server's.

    A server that does not answer is reported on stderr and the exit status is 1
    (as ``ctr version``), so the command works as a health check.
    """
    from contentd.cli.errors import describe
    from contentd.content.errors import ContentError

    version, revision = client_version()
    server: dict[str, Any] | None = None
    problem = ""
    try:
        server_version, server_revision = _server_version(ctx)
        server = {"version": server_version, "revision": server_revision, "address": ctx.target}
    except ContentError as err:
        kind, message = describe(err)
        problem = f"{kind}: {message}"
    if ctx.json:
        client = {"version": version, "revision": revision, "variant": _variant()}
        ctx.emit({"client": client, "server": server})
    else:
        ctx.write(f"contentd {version}{' ' + revision if revision else ''} ({_variant()})\n")
        if server is not None:
            rev = f" {server['revision']}" if server["revision"] else ""
            ctx.write(f"server {server['version']}{rev} at {ctx.target}\n")
    if problem:
        ctx.flush()
        ctx.warn(f"no server version: {problem}")
        return 1
    return 0


# -- config ------------------------------------------------------------------------------


def run_config_default(ctx: Context) -> int:
    return _config(None, None, use_default_path=False)


def run_config_dump(ctx: Context) -> int:
    return _config(ctx.args.config, _overrides(ctx.args), use_default_path=True)


def _config(path: str | None, overrides: Overrides | None, *, use_default_path: bool) -> int:
    from contentd.config import ConfigError
    from contentd.daemon.setup import prepare, render_effective

    try:
        effective = prepare(path, overrides, use_default_path=use_default_path)
    except ConfigError as err:
        _error(f"invalid config: {err.context}")
        return EXIT_CONFIG
    except OSError as err:
        _error(f"cannot read config: {err}")
        return EXIT_CONFIG
    for warning in effective.warnings:
        print(f"# warning: {warning}", file=sys.stderr)
    sys.stdout.write(render_effective(effective))
    return 0


# -- serve -------------------------------------------------------------------------------


def run_serve(ctx: Context) -> int:
    import logging

    from contentd.config import ConfigError
    from contentd.content.errors import ContentError
    from contentd.daemon.logs import setup_logging
    from contentd.daemon.setup import prepare

    args = ctx.args
    try:
        effective = prepare(args.config, _overrides(args))
    except ConfigError as err:
        _error(f"invalid config: {err.context}")
        return EXIT_CONFIG
    except OSError as err:
        _error(f"cannot read config: {err}")
        return EXIT_CONFIG
    config = effective.config
    setup_logging(config.debug.level, config.debug.format)
    log = logging.getLogger("contentd")
    log.info(
        "starting contentd",
        extra={
            "fields": {
                "config": effective.source or "(defaults)",
                "root": config.root,
                "state": config.state,
            }
        },
    )
    for warning in effective.warnings:
        log.warning(warning)

    from contentd.daemon.run import run_until_signalled
    from contentd.daemon.server import Daemon

    try:
        daemon = Daemon(config, effective.registry, effective.plugin_configs)
    except ContentError as err:  # e.g. an address that is no usable unix socket path
        log.error("invalid config: %s", err.context or err)
        return EXIT_CONFIG
    try:
        return run_until_signalled(daemon)
    except ContentError as err:  # another daemon on the root or socket, a required plugin
        log.error("%s", err.context or err)
        return 1
    except OSError as err:
        log.error("%s", err)
        return 1
