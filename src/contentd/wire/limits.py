"""What one connection of the native engine may cost (:class:`Limits`)."""

from __future__ import annotations

from typing import Final

__all__ = ["Limits"]

#: the attributes, by name (a compiled class has no ``__slots__`` to read them from)
_FIELDS: Final = (
    "connection_queue",
    "connection_send_buffer",
    "connection_window",
    "header_decode_burst",
    "header_decode_rate",
    "max_concurrent_streams",
    "max_control_frames",
    "max_empty_frames",
    "max_excess_resets",
    "max_frame_size",
    "max_header_list_size",
    "max_idle_control",
    "max_receive_message",
    "max_send_message",
    "stream_queue",
    "stream_window",
)


class Limits:
    """What one connection may cost; the defaults are the daemon's (treat as read-only)."""

    __slots__ = _FIELDS

    def __init__(
        self,
        *,
        max_concurrent_streams: int = 250,
        max_header_list_size: int = 64 << 10,
        max_frame_size: int = 1 << 20,
        stream_window: int = 4 << 20,
        connection_window: int = 16 << 20,
        stream_queue: int = 4 << 20,
        connection_queue: int = 32 << 20,
        max_receive_message: int = 4 << 20,
        max_send_message: int = -1,
        connection_send_buffer: int = 8 << 20,
        max_control_frames: int = 10_000,
        max_excess_resets: int = 1_000,
        max_idle_control: int = 1_000,
        max_empty_frames: int = 100,
        header_decode_rate: float = 0.01,
        header_decode_burst: float = 0.005,
    ) -> None:
        #: open streams (calls) at once: SETTINGS_MAX_CONCURRENT_STREAMS; more are refused
        self.max_concurrent_streams = max_concurrent_streams
        #: request header block, encoded and decoded: SETTINGS_MAX_HEADER_LIST_SIZE
        self.max_header_list_size = max_header_list_size
        #: largest frame accepted: SETTINGS_MAX_FRAME_SIZE
        self.max_frame_size = max_frame_size
        #: receive window of each stream: SETTINGS_INITIAL_WINDOW_SIZE
        self.stream_window = stream_window
        #: receive window of the connection
        self.connection_window = connection_window
        #: received message bytes a stream may hold before its window stops being replenished
        self.stream_queue = stream_queue
        #: the same for all streams of the connection together (then the connection's window)
        self.connection_queue = connection_queue
        #: largest request message (gRPC length prefix); -1: no limit
        self.max_receive_message = max_receive_message
        #: largest response message; -1: no limit
        self.max_send_message = max_send_message
        #: response bytes queued on the connection (all streams) before producers wait (the
        #: server shell holds its workers there; inline calls are admitted within the window)
        self.connection_send_buffer = connection_send_buffer
        #: control frames (acks, resets, window updates) queued and not yet written
        self.max_control_frames = max_control_frames
        #: running calls the peer may reset, and streams opened past max_concurrent_streams
        #: (refused), beyond the calls that completed (rapid reset); then ENHANCE_YOUR_CALM
        self.max_excess_resets = max_excess_resets
        #: PING and SETTINGS frames in a row without a HEADERS or DATA frame between them
        self.max_idle_control = max_idle_control
        #: empty DATA / CONTINUATION frames that end nothing, in a row
        self.max_empty_frames = max_empty_frames
        #: CPU seconds per second a connection may make us spend decoding header blocks
        #: that open no call (refused, malformed, not gRPC, unknown method) or that cost
        #: more than a call's allowance; past ``header_decode_burst`` its reader pauses
        self.header_decode_rate = header_decode_rate
        self.header_decode_burst = header_decode_burst

    def replace(self, **changes: float) -> Limits:
        """A copy with ``changes``."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return Limits(**values)

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)}" for name in _FIELDS)
        return f"Limits({values})"
