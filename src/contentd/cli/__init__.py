"""The ``contentd`` command: ``ctr content`` for people, plus what ctr never had.

    contentd [--address ADDR] [-n NS] [--output table|json] [--debug] COMMAND ...

    serve, config default|dump, version       the daemon (see contentd.cli.serve)
    content ls|info|get|ingest|active|rm|label|abort
    leases ls|create|rm    namespaces ls|create|rm|label    plugins ls
    gc [--dry-run]         events                            completion bash|zsh

Client commands talk to ``contentd serve`` or to containerd itself (the same
API). Exit status: 0 on success, 1 on an error (one line on stderr,
``contentd: <kind>: <message>``), 2 on a usage error.

Only argparse and the command modules' parser code load at start-up; each
handler imports what it needs (gRPC, the stubs) when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO, TextIO, cast

from contentd.cli.context import Context, Streams
from contentd.cli.parser import add_global_options

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from contentd.content.errors import ContentError

__all__ = ["Streams", "build_parser", "main"]

_EXAMPLES = """\
examples:
  contentd serve --root ./var/lib --state ./var/run --address ./var/contentd.sock
  export CONTENTD_ADDRESS=./var/contentd.sock
  contentd content ingest hello --label containerd.io/gc.root=now <<< 'hello'
  contentd content ls
  contentd --output json content ls
"""

#: 128 + SIGPIPE: a reader went away (``contentd content ls | head``).
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    from contentd.cli import completion, content, events, gc, leases, namespaces, plugins, serve

    parser = argparse.ArgumentParser(
        prog="contentd",
        description="containerd's content store, rebuilt in Python.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", "-v", action="store_true", help="print the version and exit")
    add_global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    serve.add_commands(commands)
    content.add_commands(commands)
    leases.add_commands(commands)
    namespaces.add_commands(commands)
    plugins.add_commands(commands)
    gc.add_commands(commands)
    events.add_commands(commands)
    completion.add_commands(commands)
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


def _run(argv: Sequence[str] | None, streams: Streams) -> int:
    from contentd.cli.errors import EXIT_INTERRUPTED, report

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if args.command is None:
        if args.version:
            from contentd.cli.serve import print_client_version

            return print_client_version()
        parser.print_help()
        return 0
    if args.command == "completion":
        from contentd.cli.completion import bash_script, zsh_script

        script = bash_script(parser) if args.shell == "bash" else zsh_script(parser)
        streams.out.write(script.encode())
        streams.out.flush()
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        help_parser = getattr(args, "help_parser", parser)
        help_parser.print_help()
        return 0
    ctx = Context(args, streams)
    try:
        return int(handler(ctx))
    except KeyboardInterrupt:
        print("contentd: interrupted", file=streams.err)
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
