"""``contentd fetch`` (and ``push``): registry transfers that run in the daemon.

The daemon does the transfer; this command sends the request (with credentials from
``--user`` or ``~/.docker/config.json``, for this call only) and shows the progress it
streams back: on a terminal, a live table of blobs (status, bytes, rate) and totals on
stderr; otherwise one plain line per finished blob. The result (root digest and image
name) goes to stdout. Ctrl-C cancels the transfer; fetching again resumes it.

The messages are encoded and decoded by :mod:`contentd.cli.registry_messages`, without
the protobuf runtime, whose import would delay the request.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any, Final

from contentd.cli.parser import add_command, count_between

if TYPE_CHECKING:
    from contentd.cli.context import Context
    from contentd.cli.registry_messages import ProgressMessage
    from contentd.content.errors import ContentError

__all__ = ["add_commands", "split_user"]

_REDRAW: Final = 0.1
#: a blob's last status: one plain line each
_FINAL: Final = frozenset({"done", "linked", "exists", "mounted", "skipped", "failed"})
#: statuses whose offset counts bytes sent or received in this run
_MOVING: Final = frozenset({"downloading", "uploading", "done"})
#: a blob under way: its ingest (fetch) or upload is open
_STARTED: Final = frozenset({"downloading", "uploading"})
#: a blob the store (fetch) or the registry (push) holds whole
_HELD: Final = frozenset({"done", "linked", "exists", "mounted"})


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fetch = add_command(
        commands,
        "fetch",
        help="fetch an image from a registry into the store (runs in the daemon)",
        example="contentd fetch --plain-http 127.0.0.1:5000/library/app:1",
        handler=run_fetch,
        description=(
            "Fetch an image from a registry into the store (the daemon downloads it).\n"
            "Blobs the namespace holds are skipped; blobs another namespace holds are linked\n"
            "(nothing downloaded). Everything is written under the lease\n"
            "contentd.fetch.<hash of REF> (24 h expiry, as containerd's pull lease, renewed\n"
            "by each attempt; `contentd leases ls` shows it with REF). A fetch that succeeds\n"
            "deletes it. An interrupted or failed one leaves it: it is what keeps the partial\n"
            "downloads and the blobs stored so far. Run the same command again to resume (a\n"
            "layer goes on from where it stopped), or `contentd leases rm --sync LEASE` to\n"
            "discard them. Ctrl-C names the lease and the blobs under way."
        ),
    )
    fetch.add_argument("reference", metavar="REF", help="host[:port]/repository[:tag][@digest]")
    fetch.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="P",
        help="os/arch[/variant] to fetch (repeatable; default: the daemon's)",
    )
    fetch.add_argument("--all-platforms", action="store_true", help="fetch every platform")
    fetch.add_argument("--name", default="", help="the image record's name (default: REF)")
    _transfer_options(fetch)

    push = add_command(
        commands,
        "push",
        help="push an image to a registry (runs in the daemon)",
        example="contentd push --plain-http 127.0.0.1:5000/library/app:2 app:latest",
        handler=run_push,
    )
    push.add_argument("reference", metavar="REF", help="where: host[:port]/repository[:tag]")
    push.add_argument(
        "source", nargs="?", default="", metavar="SOURCE", help="the image to push (default: REF)"
    )
    _transfer_options(push)


def _transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS (loopback registries)"
    )
    parser.add_argument(
        "--user",
        "-u",
        default=None,
        metavar="U[:P]",
        help="credentials (a missing password is asked for; default: ~/.docker/config.json)",
    )
    parser.add_argument(
        "--concurrency",
        type=count_between(1, 64),
        default=0,
        metavar="N",
        help="blobs transferred at once, 1 to 64 (default: fetch 10, push 3)",
    )


# -- credentials ------------------------------------------------------------------


def split_user(text: str) -> tuple[str, str | None]:
    user, sep, secret = text.partition(":")
    return user, (secret if sep else None)


def _ask_password(ctx: Context, user: str, host: str) -> str:
    """The password, asked on the terminal; with no terminal, or Ctrl-D at the prompt, a
    usage error (getpass would warn, read the password from stdin echoed, and usually send
    an empty one; at end of input it raises a bare EOFError)."""
    import getpass
    import warnings

    from contentd.content.errors import InvalidArgument

    # as ctr does, find out that no daemon listens before asking for a password
    ctx.check_socket()
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(f"Password for {user}@{host}: ")
        except getpass.GetPassWarning:
            raise InvalidArgument(
                f"--user {user}: no password, and no terminal to ask for it on; "
                f"give --user {user}:PASSWORD or an entry in ~/.docker/config.json"
            ) from None
        except (EOFError, KeyboardInterrupt) as err:
            # getpass ends the prompt's line only when a line was read
            print(file=ctx.streams.err, flush=True)
            if isinstance(err, KeyboardInterrupt):
                raise
            raise InvalidArgument(
                f"--user {user}: no password given (end of input at the prompt); "
                f"give --user {user}:PASSWORD or an entry in ~/.docker/config.json"
            ) from None


def _credentials(ctx: Context, host: str) -> tuple[tuple[str, str] | None, str]:
    """The credentials for ``host`` as (username, secret) and where they came from
    (``--user``, a credential helper, the docker config's path; "" for none)."""
    if ctx.args.user:
        user, secret = split_user(ctx.args.user)
        if secret is None:
            secret = _ask_password(ctx, user, host)
        return (user, secret), "--user"
    from contentd.cli.credentials import docker_credentials

    found = docker_credentials(host, warn=ctx.warn)
    if found is None:
        return None, ""
    return (found[0], found[1]), found[2]


def _auth_advice(
    err: ContentError, verb: str, host: str, creds: tuple[str, str] | None, source: str
) -> ContentError:
    """``err`` (Unauthenticated or PermissionDenied) with what to do about it."""
    from contentd.content.errors import PermissionDenied

    give = f"--user USER[:PASSWORD], or `docker login {host}` (~/.docker/config.json)"
    if isinstance(err, PermissionDenied):
        if creds is None:
            advice = f"anonymous access may not {verb} this; give credentials: {give}"
        else:
            advice = (
                f"the credentials from {source} may not {verb} this; "
                "give --user USER[:PASSWORD] for an account that may"
            )
    elif creds is None:
        advice = f"give credentials: {give}"
    elif source == "--user":
        advice = "check the user name and password given with --user"
    else:
        advice = (
            f"the credentials from {source} were refused; log in again "
            f"(`docker login {host}`) or give --user USER[:PASSWORD]"
        )
    out = type(err)(f"{err.context}; {advice}" if err.context else advice)
    out.__cause__ = err
    return out


def _transfer(
    ctx: Context,
    method: str,
    request: bytes,
    verb: str,
    reference: str,
    creds: tuple[str, str] | None,
    source: str,
) -> ProgressMessage | None:
    from contentd.content.errors import PermissionDenied, Unauthenticated

    try:
        return _run(ctx, method, request, verb, reference)
    except (Unauthenticated, PermissionDenied) as err:
        raise _auth_advice(err, verb, _host(reference), creds, source) from None


def _host(reference: str) -> str:
    return reference.split("/", 1)[0]


# -- progress -------------------------------------------------------------------------


class _Display:
    """Progress of the blobs of one transfer, live on a terminal or as plain lines."""

    def __init__(self, ctx: Context, verb: str) -> None:
        self.ctx = ctx
        self.verb = verb
        self.live = ctx.streams.err_is_tty
        self.blobs: dict[str, list[Any]] = {}  # ref -> [status, offset, total, started, resumed]
        self.started = time.monotonic()
        self.drawn = 0
        self.last = 0.0

    def update(self, msg: ProgressMessage) -> None:
        from contentd.cli.output import human_size

        ref = msg.ref or msg.descriptor.digest
        entry = self.blobs.get(ref)
        if entry is None:
            entry = self.blobs[ref] = ["", 0, msg.descriptor.size, time.monotonic(), 0]
        changed = entry[0] != msg.status
        entry[0], entry[1] = msg.status, msg.offset
        if msg.status in ("downloading", "done"):  # where this download started
            entry[4] = msg.resumed
        if self.live:
            now = time.monotonic()
            if changed or now - self.last >= _REDRAW:
                self.last = now
                self._draw()
        elif changed and msg.status in _FINAL:
            extra = f" (resumed at {human_size(entry[4])})" if entry[4] else ""
            if msg.status == "linked":
                extra = " (another namespace's copy: nothing downloaded)"
            line = f"{ref}: {msg.status} {human_size(msg.descriptor.size)}{extra}"
            print(line, file=self.ctx.streams.err, flush=True)

    def _draw(self) -> None:
        """The table, redrawn in place: each row fits the terminal's width (a wrapped row
        takes two lines, and the redraw moved up by one per row: an 80-column terminal
        filled with copies), and there are no more rows than its height allows."""
        from contentd.cli.output import human_size

        columns, rows = _terminal_size(self.ctx.streams.err)
        # the ref's column: what the status, sizes and rate (at most ~45) leave
        ref_width = max(16, min(80, columns - 46))
        now = time.monotonic()
        entries = list(self.blobs.items())
        room = max(3, rows - 2)  # with the totals' line, and the cursor's
        hidden = 0
        if len(entries) > room:
            # the blobs under way first: those are what moves
            entries.sort(key=lambda item: item[1][0] not in _STARTED)
            hidden = len(entries) - (room - 1)
            entries = entries[: room - 1]
        lines = []
        for ref, (status, offset, total, started, resumed) in entries:
            rate = ""
            if status in _STARTED and now > started:
                rate = f"{human_size((offset - resumed) / (now - started))}/s"
            if len(ref) > ref_width:
                ref = ref[: ref_width - 1] + "\u2026"
            line = (
                f"{ref:<{ref_width}} {status:<11} {human_size(offset)}/{human_size(total)} {rate}"
            )
            lines.append(line[: columns - 1])
        if hidden:
            lines.append(f"... and {hidden} more")
        # what crossed the network: not what was there, linked or mounted
        moved = sum(e[1] - e[4] for e in self.blobs.values() if e[0] in _MOVING)
        totals = f"elapsed {now - self.started:.1f}s  transferred {human_size(moved)}"
        lines.append(totals[: columns - 1])
        text = ("\x1b[F\x1b[2K" * self.drawn) + "\n".join(lines) + "\n"
        self.ctx.streams.err.write(text)
        self.ctx.streams.err.flush()
        self.drawn = len(lines)

    def finish(self) -> None:
        """The totals: redrawn on a terminal, one closing line otherwise."""
        if self.live and self.blobs:
            self._draw()
        elif self.blobs:
            print(self.summary(), file=self.ctx.streams.err, flush=True)

    def interrupted(self, reference: str) -> list[str]:
        """What an interrupted transfer leaves behind and how to go on, as far as the
        daemon's messages had said (the last may be a quarter of a second old)."""
        from contentd.cli.output import human_size

        held = sum(1 for e in self.blobs.values() if e[0] in _HELD)
        started = [(ref, e) for ref, e in self.blobs.items() if e[0] in _STARTED]
        lines = [f"  {ref}  {human_size(e[1])} of {human_size(e[2])}" for ref, e in started[:10]]
        if len(started) > 10:
            lines.append(f"  ... and {len(started) - 10} more")
        if self.verb == "push":
            blobs = "1 blob" if held == 1 else f"{held} blobs"
            head = f"push of {reference} stopped: {blobs} in the registry"
            if started:
                head += f", {len(started)} being uploaded (an upload starts over):"
            return [head, *lines, "push again to go on: blobs the registry holds are skipped"]
        if not held and not started:
            return [
                f"fetch of {reference} stopped before any blob was stored: "
                "fetching again starts over"
            ]
        lease = _fetch_lease(reference)
        # the lease is the fetch's namespace's: name it, or the command finds no such lease
        namespace = getattr(self.ctx, "namespace", "default")
        leases = "contentd leases" if namespace == "default" else f"contentd -n {namespace} leases"
        head = f"fetch of {reference} stopped: {'1 blob' if held == 1 else f'{held} blobs'} stored"
        if started:
            head += f", {len(started)} under way (as last reported):"
        return [
            head,
            *lines,
            f"the daemon keeps them under lease {lease} until a fetch of {reference} succeeds"
            " or the lease expires (24 h after the last attempt, as containerd's pull lease)",
            f"run the same command to resume; `{leases} rm --sync {lease}` discards them",
        ]

    def summary(self) -> str:
        """What moved and what did not: only ``done`` blobs crossed the network."""
        from contentd.cli.output import human_size

        sent = [e for e in self.blobs.values() if e[0] == "done"]
        size = sum(e[2] - e[4] for e in sent)
        took = time.monotonic() - self.started
        moved = "downloaded" if self.verb == "fetch" else "uploaded"
        blobs = "1 blob" if len(sent) == 1 else f"{len(sent)} blobs"
        parts = [f"{self.verb}: {blobs} ({human_size(size)}) {moved} in {took:.1f}s"]
        counts = {s: sum(1 for e in self.blobs.values() if e[0] == s) for s in _FINAL}
        if counts["linked"]:
            parts.append(f"{counts['linked']} linked from another namespace")
        if counts["mounted"]:
            parts.append(f"{counts['mounted']} mounted from another repository")
        if counts["skipped"]:
            parts.append(f"{counts['skipped']} non-distributable skipped")
        parts.append(f"{counts['exists']} already there")
        return ", ".join(parts)


def _terminal_size(stream: Any) -> tuple[int, int]:
    """The columns and lines of the terminal ``stream`` writes to (COLUMNS and LINES
    first, as argparse reads them; 80 x 24 when it cannot be told)."""
    import contextlib
    import os

    sizes = [0, 0]
    for i, name in enumerate(("COLUMNS", "LINES")):
        with contextlib.suppress(ValueError):
            sizes[i] = int(os.environ.get(name, "0"))
    if not all(sizes):
        try:
            size = os.get_terminal_size(stream.fileno())
        except (AttributeError, ValueError, OSError):
            size = os.terminal_size((80, 24))
        sizes = [sizes[0] or size.columns or 80, sizes[1] or size.lines or 24]
    return sizes[0], sizes[1]


def _fetch_lease(reference: str) -> str:
    """The lease the daemon fetches ``reference`` under (as :func:`fetch` names it)."""
    from contentd.images.fetch import fetch_lease_id
    from contentd.images.reference import parse_reference

    return fetch_lease_id(str(parse_reference(reference)))


_SERVICE: Final = "/contentd.services.registry.v1.Registry/"


def _run(
    ctx: Context, method: str, request: bytes, verb: str, reference: str
) -> ProgressMessage | None:
    """Stream ``method``'s progress (grpcio-free on a unix socket: no 0.1 s grpcio import)."""
    from contentd.cli.registry_messages import decode_progress

    display = _Display(ctx, verb)
    final = None
    try:
        for raw in ctx.quick_stream_raw(_SERVICE + method, request):
            msg = decode_progress(raw)
            if msg.status == "image":
                final = msg
            else:
                display.update(msg)
    except KeyboardInterrupt:
        if display.live and display.blobs:
            display._draw()  # the table as the note below counts it
        ctx.interrupt_notes.extend(display.interrupted(reference))
        raise
    display.finish()
    return final


def _result(ctx: Context, final: ProgressMessage | None) -> int:
    if final is None:
        return 1
    root = final.descriptor
    if ctx.json:
        ctx.emit(
            {
                "image": final.image,
                "digest": root.digest,
                "media_type": root.media_type,
                "size": root.size,
            }
        )
    else:
        ctx.write(f"{final.image} {root.digest}\n")
    return 0


def run_push(ctx: Context) -> int:
    from contentd.cli.registry_messages import encode_push_request

    args = ctx.args
    creds, source = _credentials(ctx, _host(args.reference))
    request = encode_push_request(
        args.reference,
        source=args.source,
        plain_http=args.plain_http,
        credentials=creds,
        concurrency=args.concurrency,
    )
    return _result(ctx, _transfer(ctx, "Push", request, "push", args.reference, creds, source))


def run_fetch(ctx: Context) -> int:
    from contentd.cli.registry_messages import encode_fetch_request

    args = ctx.args
    creds, source = _credentials(ctx, _host(args.reference))
    request = encode_fetch_request(
        args.reference,
        platforms=args.platform,
        all_platforms=args.all_platforms,
        plain_http=args.plain_http,
        credentials=creds,
        concurrency=args.concurrency,
        image_name=args.name,
    )
    return _result(ctx, _transfer(ctx, "Fetch", request, "fetch", args.reference, creds, source))
