"""Frame codec and header helpers of the native engine."""

from __future__ import annotations

import hpack
import pytest

from contentd.wire import frames as fr
from contentd.wire.metadata import (
    MAX_STATUS_MESSAGE,
    RESPONSE_HEADERS,
    TRAILERS_OK,
    parse_request,
    percent_encode,
    status_block,
    timeout_seconds,
    trailers_only,
)


def test_frames_round_trip() -> None:
    sent = [
        fr.data(1, b"hello", end_stream=True),
        fr.headers(3, b"\x88"),
        fr.settings({fr.Setting.INITIAL_WINDOW_SIZE: 1 << 20, fr.Setting.MAX_FRAME_SIZE: 16384}),
        fr.settings(ack=True),
        fr.window_update(0, 12345),
        fr.ping(b"12345678", ack=True),
        fr.rst_stream(5, fr.ErrorCode.CANCEL),
        fr.goaway(7, fr.ErrorCode.NO_ERROR, b"bye"),
        fr.encode(fr.DATA, 0, 9, b"x" * 70000),
    ]
    wire = b"".join(sent)
    frames, used = fr.parse_frames(wire + b"\x00\x00")  # a partial header stays unread
    assert used == len(wire)
    assert [(f.type, f.flags, f.stream_id) for f in frames] == [
        (fr.DATA, fr.END_STREAM, 1),
        (fr.HEADERS, fr.END_HEADERS, 3),
        (fr.SETTINGS, 0, 0),
        (fr.SETTINGS, fr.ACK, 0),
        (fr.WINDOW_UPDATE, 0, 0),
        (fr.PING, fr.ACK, 0),
        (fr.RST_STREAM, 0, 5),
        (fr.GOAWAY, 0, 0),
        (fr.DATA, 0, 9),
    ]
    assert frames[0].payload == b"hello"
    assert fr.parse_settings(frames[2].payload) == [
        (fr.Setting.INITIAL_WINDOW_SIZE, 1 << 20),
        (fr.Setting.MAX_FRAME_SIZE, 16384),
    ]
    assert int.from_bytes(frames[4].payload) == 12345
    assert frames[7].payload[8:] == b"bye"
    assert len(frames[8].payload) == 70000
    # a frame cut short is left for the next read
    assert fr.parse_frames(wire[:-1]) == (frames[:-1], len(wire) - 70009)
    with pytest.raises(ValueError):
        fr.parse_settings(b"12345")


def test_response_blocks_decode() -> None:
    decoder = hpack.Decoder()
    assert decoder.decode(RESPONSE_HEADERS) == [
        (":status", "200"),
        ("content-type", "application/grpc"),
    ]
    assert decoder.decode(TRAILERS_OK) == [("grpc-status", "0")]
    assert decoder.decode(status_block(5, "not found")) == [
        ("grpc-status", "5"),
        ("grpc-message", "not found"),
    ]
    long = "x" * 4000  # multi-byte HPACK length
    assert decoder.decode(trailers_only(2, long))[-1] == ("grpc-message", long)
    # longer messages are cut to fit clients' header limits, and say so
    cut = "x" * (MAX_STATUS_MESSAGE - len("...(cut)")) + "...(cut)"
    assert decoder.decode(trailers_only(2, "x" * 5000))[-1] == ("grpc-message", cut)
    # nothing was added to the dynamic table: the blocks are stateless
    assert len(decoder.header_table.dynamic_entries) == 0


def test_percent_encoding() -> None:
    assert percent_encode("plain text: ok") == b"plain text: ok"
    assert percent_encode("100%") == b"100%25"
    assert percent_encode("☃\n") == b"%E2%98%83%0A"


def test_timeouts() -> None:
    assert timeout_seconds("1S") == 1.0
    assert timeout_seconds("250m") == 0.25
    assert timeout_seconds("2H") == 7200.0
    assert timeout_seconds("10u") == pytest.approx(1e-5)
    assert timeout_seconds("5n") == pytest.approx(5e-9)
    for bad in ("", "S", "1", "1x", "123456789S", "-1S"):
        assert timeout_seconds(bad) is None


def test_parse_request() -> None:
    req = parse_request(
        [
            (b":method", b"POST"),
            (b":path", b"/a.B/C"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"grpc-timeout", b"3S"),
            (b"containerd-namespace", b"ns"),
            (b"trace-bin", b"AAEC"),  # unpadded base64
            (b"other-bin", b"AAE=,Ag"),
        ]
    )
    assert (req.method, req.path, req.timeout) == ("POST", "/a.B/C", 3.0)
    assert req.metadata == (
        ("containerd-namespace", "ns"),
        ("trace-bin", b"\x00\x01\x02"),
        ("other-bin", b"\x00\x01\x02"),
    )
