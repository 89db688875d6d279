"""The daemon's unix socket: refusing a live one, replacing a stale one, mode and owner."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from typing import Final

from contentd.content.errors import InvalidArgument, Unavailable

__all__ = [
    "SOCKET_MODE",
    "AddressInUse",
    "finish_socket",
    "prepare_socket",
    "remove_socket",
    "socket_path",
]

#: containerd's socket mode: owner and group may connect.
SOCKET_MODE: Final = 0o660
#: sockaddr_un's sun_path holds 108 bytes including the terminating NUL.
_MAX_PATH: Final = 107


class AddressInUse(Unavailable):
    """A server already answers on the socket."""


def socket_path(address: str) -> str:
    """The filesystem path of a unix address (``/path``, ``unix:path``, ``unix:///path``)."""
    if address.startswith("unix://"):
        path = address[len("unix://") :]
    elif address.startswith("unix:"):
        path = address[len("unix:") :]
    else:
        path = address
    if not path or (":" in path and not path.startswith(("/", "."))):
        raise InvalidArgument(f"grpc.address: {address!r} is not a unix socket path")
    path = os.path.abspath(path)
    if len(os.fsencode(path)) > _MAX_PATH:
        raise InvalidArgument(
            f"grpc.address: socket path {path!r} is longer than {_MAX_PATH} bytes"
        )
    return path


def prepare_socket(path: str) -> None:
    """Make ``path`` free to bind: refuse a live server, remove a stale socket."""
    os.makedirs(os.path.dirname(path) or ".", 0o711, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise AddressInUse(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as err:
        if err.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
    else:
        raise AddressInUse(f"a server is already listening on {path}")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def finish_socket(path: str, uid: int = 0, gid: int = 0) -> None:
    """Set the socket's mode to 0660 and, for non-zero ``uid``/``gid``, its owner/group."""
    os.chmod(path, SOCKET_MODE)
    if uid or gid:
        os.chown(path, uid or -1, gid or -1)


def remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
