"""The ``contentd`` command: ``ctr content`` for people, plus what ctr never had.

    contentd [--address ADDR] [-n NS] [--output table|json|jsonl] [--debug] COMMAND ...

    serve, config default|dump, version       the daemon (see contentd.cli.serve)
    content ls|info|get|ingest|active|rm|label|abort        images ls|tag|rm|inspect
    leases ls|create|rm    namespaces ls|create|rm|label    plugins ls
    gc [--dry-run]         events                            completion bash|zsh|fish
    fsck [--repair] [--root DIR] [--status]

Client commands talk to ``contentd serve`` or to containerd itself (the same
API). Exit status: 0 on success, 1 on an error (one line on stderr,
``contentd: <kind>: <message>``), 2 on a usage error or no command, 130 after Ctrl-C
(:mod:`contentd.cli.interrupt`). Options may come anywhere after their command.

Only argparse and the command modules' parser code load at start-up; each
handler imports what it needs (gRPC, the stubs) when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO, Final, NoReturn, TextIO, cast

from contentd.cli.context import Context, Streams
from contentd.cli.parser import CommandParser, RawFormatter, add_global_options

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from contentd.content.errors import ContentError

__all__ = ["TOP_LEVEL", "Streams", "build_parser", "command_module", "entry", "main"]

_EXAMPLES = """\
examples:
  contentd serve --root var/lib/contentd --state var/run/contentd --address var/run/contentd.sock
  export CONTENTD_ADDRESS=var/run/contentd.sock
  contentd content ingest hello --label containerd.io/gc.root=now <<< 'hello'
  contentd content ls
  contentd --output json content ls
"""

#: 128 + SIGPIPE: a reader went away (``contentd content ls | head``).
EXIT_BROKEN_PIPE = 141


#: Each top-level command (and alias) -> the module that builds it.
TOP_LEVEL: Final = {
    "serve": "serve",
    "config": "serve",
    "version": "serve",
    "content": "content",
    "images": "images",
    "image": "images",
    "i": "images",
    "fetch": "registry",
    "push": "registry",
    "export": "layout",
    "import": "layout",
    "leases": "leases",
    "lease": "leases",
    "namespaces": "namespaces",
    "namespace": "namespaces",
    "ns": "namespaces",
    "plugins": "plugins",
    "plugin": "plugins",
    "gc": "gc",
    "fsck": "fsck",
    "events": "events",
    "event": "events",
    "completion": "completion",
}
_MODULES: Final = tuple(dict.fromkeys(TOP_LEVEL.values()))
#: Global options that take a value (skipped when looking for the command).
_VALUED: Final = frozenset({"-a", "--address", "-n", "--namespace", "--output"})


def command_module(argv: Sequence[str]) -> str | None:
    """The module of the command ``argv`` names, or None (no command, or an unknown one)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            return None
        elif arg.startswith("-"):
            skip = arg in _VALUED
        else:
            return TOP_LEVEL.get(arg)
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command tree; with ``argv``, only the branch of the command it names
    (argparse is slow to build ~50 parsers, and a command needs one branch)."""
    import importlib

    wanted = command_module(argv) if argv is not None else None
    parser = CommandParser(
        prog="contentd",
        description="containerd's content store, rebuilt in Python.",
        epilog=_EXAMPLES,
        formatter_class=RawFormatter,
    )
    parser.add_argument("--version", "-v", action="store_true", help="print the version and exit")
    add_global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in _MODULES:
        if wanted is None or name == wanted:
            importlib.import_module(f"contentd.cli.{name}").add_commands(commands)
    return parser


def _default_streams() -> Streams:
    sys.stdout.flush()
    out = getattr(sys.stdout, "buffer", None)
    inp = getattr(sys.stdin, "buffer", None) if sys.stdin is not None else None
    return Streams(
        out=cast(BinaryIO, out if out is not None else _TextSink(sys.stdout)),
        err=sys.stderr,
        inp=cast(BinaryIO, inp) if inp is not None else io.BytesIO(),
    )


class _TextSink(io.RawIOBase):
    """Bytes written to a text stream that has no binary buffer (a test's StringIO)."""

    def __init__(self, text: TextIO) -> None:
        super().__init__()
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        raw = bytes(data)
        self._text.write(raw.decode("utf-8", "replace"))
        return len(raw)


@contextlib.contextmanager
def _redirected(streams: Streams) -> Iterator[None]:
    """sys.stdout/sys.stderr pointed at ``streams`` (argparse and print use them)."""
    text = io.TextIOWrapper(
        cast(io.BufferedWriter, streams.out), encoding="utf-8", write_through=True
    )
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(streams.err):
            yield
    finally:
        text.flush()
        text.detach()


def main(argv: Sequence[str] | None = None, *, streams: Streams | None = None) -> int:
    """Run one command; returns the exit status (argparse's exits included).

    ``streams`` replaces stdin/stdout/stderr (tests run the command in-process).
    """
    if streams is None:
        return _run(argv, _default_streams())
    with _redirected(streams):
        return _run(argv, streams)


def entry() -> NoReturn:
    """The ``contentd`` program: :func:`main` with contentd's Ctrl-C handling
    (:mod:`contentd.cli.interrupt`), ending the process when the command is done."""
    import gc

    from contentd.cli import interrupt

    interrupt.install()
    # what start-up made (modules, classes) lives as long as the process: no collection
    # need look at it again (``python -m contentd`` collects nothing until here)
    gc.freeze()
    gc.enable()
    status = main()
    if "grpc" in sys.modules or interrupt.interrupted():
        # grpcio's finalizers, run at exit, can hang once an interrupt broke a call
        interrupt.exit_now(status)
    sys.exit(status)


def _run(argv: Sequence[str] | None, streams: Streams) -> int:
    from contentd.cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, report

    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["__complete"]:  # what the completion scripts call; never in help
        from contentd.cli.completion import run_complete

        return run_complete(argv[1:], streams)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if args.command is None:
        if args.version:
            from contentd.cli.serve import print_client_version

            return print_client_version()
        parser.print_help(sys.stderr)  # a command is required: a usage error
        return EXIT_USAGE
    if args.command == "completion":
        from contentd.cli.completion import script

        streams.out.write(script(args.shell, build_parser()).encode())
        streams.out.flush()
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        help_parser = getattr(args, "help_parser", parser)
        help_parser.print_help(sys.stderr)  # a group without its command
        return EXIT_USAGE
    ctx = Context(args, streams)
    try:
        return int(handler(ctx))
    except KeyboardInterrupt:
        print("contentd: interrupted", file=streams.err)
        for note in ctx.interrupt_notes:  # what the command left behind, and what to do
            print(note, file=streams.err)
        ctx.abandon()  # no waiting on the daemon; what it holds stays (an ingest resumes)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout(streams)
        return EXIT_BROKEN_PIPE
    except Exception as err:
        return report(_refine(err, ctx), streams.err, debug=ctx.debug)
    finally:
        ctx.close()
        with contextlib.suppress(BrokenPipeError, ValueError):
            streams.out.flush()


def _silence_stdout(streams: Streams) -> None:
    """After EPIPE, send what is still buffered to /dev/null (no error at exit)."""
    import os

    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, streams.out.fileno())
        os.close(devnull)


def _refine(err: Exception, ctx: Context) -> Exception:
    """A failed connection becomes one error that names the address and the fix."""
    from contentd.cli.errors import Unreachable, is_connect_failure, unreachable
    from contentd.content.errors import ContentError

    if (
        isinstance(err, ContentError)
        and not isinstance(err, Unreachable)
        and is_connect_failure(err)
    ):
        new = unreachable(ctx.target, _reason(err))
        new.__cause__ = err
        return new
    return err


def _reason(err: ContentError) -> str:
    """The last part of gRPC's connect error (``connection refused``), lower-cased."""
    text = err.context.rstrip().rsplit(": ", 1)[-1]
    return text.strip().lower() or "unavailable"
