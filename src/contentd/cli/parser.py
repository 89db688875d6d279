"""Building the argparse tree: global options, and one helper to add a command.

Global options (``--address/-a``, ``--namespace/-n``, ``--output``,
``--debug``) go before the command, as with ctr, or after it: every client
command accepts them too (their defaults are suppressed there, so they never
override a value given earlier).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

if TYPE_CHECKING:
    from contentd.cli.context import Context

__all__ = [
    "OUTPUTS",
    "CommandParser",
    "Handler",
    "RawFormatter",
    "add_command",
    "add_global_options",
    "count_between",
    "duration",
    "group",
    "label_pair",
    "nonnegative",
    "parse_go_duration",
    "parse_label_args",
    "terminal_columns",
]

Handler = Callable[["Context"], int]

OUTPUTS: Final = ("table", "json", "jsonl")


class CommandParser(argparse.ArgumentParser):
    """A parser whose commands take options anywhere: before, between and after their
    positionals (``ingest REF --label k=v FILE``), as argparse's intermixed parsing does.

    Every parser in the tree is of this class (``add_subparsers`` builds its children
    with the parent's class); one that has subcommands parses as usual.
    """

    _intermixed = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixed or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False

    def error(self, message: str) -> NoReturn:
        """argparse's usage error, with contentd's command for a ctr or docker one that is
        spelled otherwise here (``images pull``: ``contentd fetch``)."""
        found = re.search(r"invalid choice: '([^']*)'", message)
        if found is not None:
            hint = _CTR_COMMANDS.get((self.prog.rsplit(" ", 1)[-1], found.group(1)))
            if hint is not None:
                message += f"; contentd's command for that is {hint}"
        super().error(message)


#: (parent, command) a ctr or docker user types -> contentd's command for it
_CTR_COMMANDS: Final = {
    ("contentd", "pull"): "`contentd fetch REF` (no unpacking: contentd has no snapshotter)",
    ("images", "pull"): "`contentd fetch REF` (no unpacking: contentd has no snapshotter)",
    ("content", "fetch"): "`contentd fetch REF`",
    ("images", "fetch"): "`contentd fetch REF`",
    ("images", "push"): "`contentd push REF [SOURCE]`",
    ("content", "push"): "`contentd push REF [SOURCE]`",
    ("images", "export"): "`contentd export -o FILE NAME...`",
    ("images", "import"): "`contentd import DIR|FILE.tar`",
    ("contentd", "save"): "`contentd export -o FILE NAME...`",
    ("images", "save"): "`contentd export -o FILE NAME...`",
    ("contentd", "load"): "`contentd import DIR|FILE.tar`",
    ("images", "load"): "`contentd import DIR|FILE.tar`",
    ("contentd", "tag"): "`contentd images tag SOURCE NAME...`",
    ("contentd", "rmi"): "`contentd images rm NAME...`",
    ("contentd", "inspect"): "`contentd images inspect NAME`",
}


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil (and, with it,
    bz2, lzma and zlib): argparse's formatter does, for every argument added, ~3% of
    contentd fetch's command. ``COLUMNS`` if positive, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class RawFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's RawDescriptionHelpFormatter, its width from :func:`terminal_columns`."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = terminal_columns() - 2  # as argparse does
        super().__init__(prog, indent_increment, max_help_position, width)


class _Formatter(RawFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The client options; with ``suppress`` an unset option leaves no attribute."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--address",
        "-a",
        dest="address",
        metavar="ADDR",
        default=default,
        help="daemon socket (env CONTENTD_ADDRESS; default /run/contentd/contentd.sock)",
    )
    group.add_argument(
        "--namespace",
        "-n",
        dest="namespace",
        metavar="NS",
        default=default,
        help="namespace (env CONTENTD_NAMESPACE, then CONTAINERD_NAMESPACE; default 'default')",
    )
    group.add_argument(
        "--output",
        dest="output",
        choices=OUTPUTS,
        default=default,
        help="table (default); json: one document (an array for lists); jsonl: one object per line",
    )
    group.add_argument(
        "--debug",
        dest="debug",
        action="store_true",
        default=default,
        help="print tracebacks with errors",
    )


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    example: str | Sequence[str],
    handler: Handler | None = None,
    aliases: Sequence[str] = (),
    description: str | None = None,
    client: bool = True,
) -> argparse.ArgumentParser:
    """A command with its one-line help, an example in its ``--help``, and (for client
    commands) the global options."""
    examples = [example] if isinstance(example, str) else list(example)
    epilog = "example:\n" + "\n".join(f"  {line}" for line in examples)
    parser = commands.add_parser(
        name,
        aliases=list(aliases),
        help=help,
        description=description or help[:1].upper() + help[1:] + ".",
        epilog=epilog,
        formatter_class=_Formatter,
    )
    if client:
        add_global_options(parser, suppress=True)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    example: str | Sequence[str],
    aliases: Sequence[str] = (),
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A command with subcommands (``contentd content ...``); without one it prints its help."""
    parser = add_command(commands, name, help=help, example=example, aliases=aliases)
    parser.set_defaults(handler=None, help_parser=parser)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", title="commands")


# -- argument types (argparse turns their ValueError into a usage error) --------------


_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_TERM: Final = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds from a Go duration string (``30s``, ``1h30m``, ``1.5h``, ``0``)."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-") if body[:1] in "+-" else body
    if body == "0":
        return 0.0
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_TERM.match(body, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r} (examples: 30s, 10m, 1h30m)")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f"invalid duration {text!r} (examples: 30s, 10m, 1h30m)")
    return sign * total


def duration(text: str) -> float:
    """An argparse type: a non-negative Go duration, in seconds."""
    try:
        seconds = parse_go_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"negative duration {text!r}")
    return seconds


def nonnegative(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def count_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (a count of workers, say, where
    0 would otherwise be quietly taken for something else)."""

    def count(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}: {value}")
        return value

    return count


def label_pair(text: str) -> tuple[str, str]:
    """``k=v`` (``k=`` gives an empty value; a bare ``k`` is an error here)."""
    from contentd.content.errors import InvalidArgument
    from contentd.content.labels import validate_label

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        validate_label(key, value)
    except InvalidArgument as err:
        raise argparse.ArgumentTypeError(err.context) from None
    return key, value


def parse_label_args(items: Sequence[str]) -> dict[str, str]:
    """ctr's label arguments: ``k=v``; ``k=`` (empty: remove); a bare ``k`` is ``k=true``.
    A label too big for the server is InvalidArgument here, before any call."""
    from contentd.content.labels import validate_label

    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        labels[key] = value if sep else "true"
        validate_label(key, labels[key])
    return labels
