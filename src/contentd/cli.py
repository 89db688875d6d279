"""The ``contentd`` command: run the daemon, show its configuration and version.

    contentd serve [--config FILE] [--root DIR] [--state DIR] [--address SOCK]
                   [--content-sharing-policy shared|isolated] [--log-level L]
    contentd config default          the built-in defaults, as TOML
    contentd config dump [--config]  the effective configuration, as TOML
    contentd version

Heavy modules are imported inside the subcommands, so ``contentd --help`` is quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contentd",
        description="containerd's content store, rebuilt in Python.",
    )
    parser.add_argument("--version", "-v", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the daemon (containerd's content, leases, namespaces, events, ... services)",
        description="Run the daemon in the foreground; SIGTERM or SIGINT stop it gracefully.",
    )
    _add_config_flag(serve)
    serve.add_argument("--root", metavar="DIR", help="persistent state (config: root)")
    serve.add_argument("--state", metavar="DIR", help="runtime state (config: state)")
    serve.add_argument("--address", "-a", metavar="SOCK", help="unix socket (config: grpc.address)")
    serve.add_argument(
        "--content-sharing-policy",
        choices=("shared", "isolated"),
        help='metadata content sharing (config: plugins."io.containerd.metadata.v1.sqlite")',
    )
    serve.add_argument(
        "--log-level",
        "-l",
        choices=_LEVELS,
        metavar="LEVEL",
        help="log level (config: debug.level)",
    )

    config = commands.add_parser("config", help="show the configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    config_commands.add_parser("default", help="print the default configuration")
    dump = config_commands.add_parser("dump", help="print the effective configuration")
    _add_config_flag(dump)

    commands.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version or args.command == "version":
        return _version()
    if args.command == "serve":
        return _serve(args)
    if args.command == "config":
        if args.config_command == "default":
            return _config(None, use_default_path=False)
        if args.config_command == "dump":
            return _config(args.config, use_default_path=True)
        parser.parse_args(["config", "--help"])
        return EXIT_CONFIG
    parser.print_help()
    return 0


def _version() -> int:
    from contentd import __version__
    from contentd.api.version import git_revision

    revision = git_revision()
    print(f"contentd {__version__}{' ' + revision if revision else ''}")
    return 0


def _error(message: str) -> None:
    print(f"contentd: {message}", file=sys.stderr)


def _config(path: str | None, *, use_default_path: bool) -> int:
    from contentd.config import ConfigError
    from contentd.daemon.setup import prepare, render_effective

    try:
        effective = prepare(path, use_default_path=use_default_path)
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


def _serve(args: argparse.Namespace) -> int:
    import logging

    from contentd.config import ConfigError
    from contentd.content.errors import ContentError
    from contentd.daemon.logs import setup_logging
    from contentd.daemon.setup import Overrides, prepare

    overrides = Overrides(
        root=args.root,
        state=args.state,
        address=args.address,
        content_sharing_policy=args.content_sharing_policy,
        log_level=args.log_level,
    )
    try:
        effective = prepare(args.config, overrides)
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


if __name__ == "__main__":
    sys.exit(main())
