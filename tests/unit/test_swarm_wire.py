"""The swarm's protocol seam (wire.py): the line protocol's slow-path reader,
and how a client codec is made, counts and gives texts for the engine."""

from __future__ import annotations

import pytest

from ioclient import RedisClient
from ioproto import ProtocolViolation
from swarm import wire
from swarm.wire import CodecReader, LineReader


def test_line_reader_counts_and_splits_in_any_pieces() -> None:
    stream = b"one\ntwo\n\nthree\n"
    for cut in range(len(stream) + 1):
        reader = LineReader()
        texts = reader.texts(stream[:cut]) + reader.texts(stream[cut:])
        assert texts == [b"one", b"two", b"", b"three"], cut
    assert LineReader().count(stream) == 4


def test_line_reader_refuses_an_endless_reply() -> None:
    with pytest.raises(ProtocolViolation):
        LineReader().texts(b"x" * ((1 << 20) + 2))


def test_the_line_protocol_has_no_codec_and_the_others_a_fresh_one_each() -> None:
    assert wire.codec_factory("line") is None
    make = wire.codec_factory("postgres", user="u", database="d")
    assert make is not None
    a, b = make(), make()
    assert a is not b and not a.keep and not a.ready  # counts only; ready after its handshake
    assert b"user\0u\0database\0d\0" in a.handshake()
    with pytest.raises(ValueError):
        wire.codec_factory("postgres", user="a\0b")  # found in the parent, not in every worker
    with pytest.raises(ValueError, match="unknown protocol"):
        wire.codec_factory("smtp")


@pytest.mark.parametrize("protocol", [p for p in wire.PROTOCOLS if p != "line"])
def test_every_default_message_is_a_request_of_its_protocol(protocol: str) -> None:
    make = wire.codec_factory(protocol)
    assert make is not None
    assert make().request(wire.DEFAULT_MESSAGES[protocol].format(i=7))


def test_codec_reader_counts_one_byte_at_a_time_and_keeps_no_text() -> None:
    stream = b"+PONG\r\n$3\r\nabc\r\n-ERR no\r\n"
    codec = RedisClient(keep=False)
    reader = CodecReader(codec)
    assert sum(reader.count(stream[i:i + 1]) for i in range(len(stream))) == 3
    assert codec.replies() == [] and codec.error_replies == 1


def test_codec_reader_gives_texts_while_keep_is_on() -> None:
    codec = RedisClient(keep=False)
    reader = CodecReader(codec)
    assert reader.count(b"+PONG\r\n") == 1
    codec.keep = True  # the engine's slow path: an action is in flight
    assert reader.texts(b"+PONG\r\n+O") == [b"PONG"] and reader.texts(b"K\r\n") == [b"OK"]
    codec.keep = False
    assert reader.count(b"+PONG\r\n") == 1 and codec.replies() == []
