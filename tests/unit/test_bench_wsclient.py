"""The fan-out benchmark's lean WebSocket client (bench/wsclient.py): its frame parser must cut
every server frame the way RFC 6455 says, or the benchmark counts what was never sent. The frames
are made by the ``websockets`` library, an independent implementation."""

from __future__ import annotations

import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from orchlog.bench.wsclient import (
    MARKER,
    OP_PING,
    OP_TEXT,
    FrameParser,
    ProtocolError,
    check_upgrade,
    client_frame,
    upgrade_request,
)


def server_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=False, extensions=())


def feed_in_pieces(parser: FrameParser, data: bytes, size: int) -> list[tuple[int, bytes]]:
    out = []
    for i in range(0, len(data), size):
        out += parser.feed(data[i : i + size])
    return out


@pytest.mark.parametrize("length", [0, 5, 125, 126, 300, 65535, 65536, 70_000])  # 7, 16 and 64-bit lengths
def test_lengths_of_every_width_parse_whole_or_in_pieces(length: int) -> None:
    body = bytes(i % 251 for i in range(length))
    stream = server_frame(Opcode.TEXT, body) + server_frame(Opcode.BINARY, b"next")
    assert FrameParser().feed(stream) == [(OP_TEXT, body), (0x2, b"next")]
    for size in (1, 3, 7, 1000):
        if size == 1 and length > 1000:
            continue  # byte by byte is covered by the short frames; it is slow for long ones
        assert feed_in_pieces(FrameParser(), stream, size) == [(OP_TEXT, body), (0x2, b"next")], size


def test_fragments_are_joined_with_control_frames_between_them_returned_as_they_come() -> None:
    stream = (
        server_frame(Opcode.TEXT, b"ab", fin=False)
        + server_frame(Opcode.PING, b"p")
        + server_frame(Opcode.CONT, b"c" * 200, fin=False)
        + server_frame(Opcode.CONT, b"ef", fin=True)
        + server_frame(Opcode.TEXT, b"whole")
    )
    want = [(OP_PING, b"p"), (OP_TEXT, b"ab" + b"c" * 200 + b"ef"), (OP_TEXT, b"whole")]
    assert FrameParser().feed(stream) == want
    assert feed_in_pieces(FrameParser(), stream, 1) == want


@pytest.mark.parametrize(
    "stream",
    [
        bytes((0x81, 0x81, 1, 2, 3, 4, ord("x") ^ 1)),  # masked (a fixed key: ids equal on every worker)
        server_frame(Opcode.CONT, b"x"),  # a continuation of nothing
        server_frame(Opcode.TEXT, b"a", fin=False) + server_frame(Opcode.TEXT, b"b"),  # a message inside one
        bytes((0x83, 0)),  # a reserved opcode
        bytes((0xC1, 0)),  # RSV1 (compression) without an extension
    ],
    ids=["masked", "orphan-continuation", "message-inside-message", "reserved-opcode", "rsv1"],
)
def test_frames_a_server_may_not_send_are_errors(stream: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameParser().feed(stream)


def test_a_message_over_the_bound_is_an_error_before_it_is_buffered() -> None:
    with pytest.raises(ProtocolError):
        FrameParser(max_message=100).feed(server_frame(Opcode.TEXT, b"x" * 101)[:10])


@pytest.mark.parametrize("length", [0, 2, 125, 126, 70_000])
def test_client_frames_are_masked_and_decode_to_their_payload(length: int) -> None:
    payload = bytes(i % 256 for i in range(length))
    reader = StreamReader()
    reader.feed_data(client_frame(0xA, payload) if length <= 125 else client_frame(0x1, payload))
    parse = Frame.parse(reader.read_exact, mask=True)
    with pytest.raises(StopIteration) as done:
        next(parse)
    frame = done.value.value
    assert frame.data == payload and frame.fin


def test_the_marker_occurs_once_per_event_even_when_content_spells_it() -> None:
    """The server's bytes for an event, with content and payload strings that contain the marker."""
    tricky = MARKER.decode() + '1,"data":{}}'
    items = [
        {"type": "agent_log", "seq": i, "data": {"seq": i, "content": tricky, "payload": {"t": 1.0, "s": tricky}}}
        for i in range(1, 6)
    ]
    batch = orjson.dumps({"type": "events", "items": items})
    assert batch.count(MARKER) == 5
    assert orjson.dumps(items[0]).count(MARKER) == 1
    assert orjson.dumps({"type": "hello", "head_seq": 3}).count(MARKER) == 0


def test_the_upgrade_response_must_be_a_101_with_the_right_accept() -> None:
    request, accept = upgrade_request("127.0.0.1:9", "/api/v1/stream?batch=1")
    assert request.startswith(b"GET /api/v1/stream?batch=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + accept
    check_upgrade(ok, accept)
    with pytest.raises(ProtocolError, match="403"):
        check_upgrade(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0", accept)
    with pytest.raises(ProtocolError, match="Accept"):
        check_upgrade(ok.replace(accept, b"AAAA"), accept)
