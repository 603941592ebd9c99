"""What every client codec must do, whatever its protocol (ioclient).

The per-protocol files (test_ioclient_<protocol>.py) describe replies as
Cases and hand them to ``check_case``, which feeds each one whole, one byte
at a time, split at every position, and with texts not kept, and demands
the same replies every time, each completed exactly at its last byte.
This file also proves the interface shared by all codecs and that no codec
loops over bytes in Python: lines executed are counted with sys.settrace,
which is deterministic, unlike a clock.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from typing import Callable

import pytest

from ioclient import CODECS, ClientCodec, ProtocolError, make


@dataclass
class Case:
    """Replies as the server sends them, with the text each must decode to.

    ``prefix``: bytes that complete no reply (postgres's startup replies).
    ``eof``: the last reply is delimited by the close of the connection.
    """

    name: str
    factory: Callable[..., ClientCodec]
    replies: list[tuple[bytes, bytes]]
    prefix: bytes = b""
    errors: int = 0
    eof: bool = False

    @property
    def data(self) -> bytes:
        return self.prefix + b"".join(wire for wire, _ in self.replies)

    @property
    def texts(self) -> list[bytes]:
        return [text for _, text in self.replies]

    @property
    def ends(self) -> list[int]:
        """Offsets just past each reply's last byte."""
        out, pos = [], len(self.prefix)
        for wire, _ in self.replies:
            pos += len(wire)
            out.append(pos)
        return out

    def __str__(self) -> str:
        return self.name


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))] + [b""]


def feed(codec: ClientCodec, chunks: list[bytes]) -> list[int]:
    return [codec.receive_data(chunk) for chunk in chunks]


def completed_at(counts: list[int], sizes: list[int]) -> list[int]:
    """Offsets at which replies completed, from per-chunk counts (EOF = -1)."""
    out, pos = [], 0
    for n, size in zip(counts, sizes):
        pos += size
        out += [pos if size else -1] * n
    return out


def check_case(case: Case) -> None:
    data = case.data
    ends = case.ends[:-1] + [-1] if case.eof else case.ends
    ctx = f"{case.name}: {data[:120]!r}"

    codec = case.factory()
    assert sum(feed(codec, [data, b""])) == len(case.replies), ctx
    assert codec.replies() == case.texts, ctx
    assert codec.error_replies == case.errors, ctx
    assert codec.pending == 0 and codec.ready, ctx

    chunks = bytewise(data)
    codec = case.factory()
    counts = feed(codec, chunks)
    assert completed_at(counts, [len(c) for c in chunks]) == ends, ctx
    assert codec.replies() == case.texts and codec.error_replies == case.errors, ctx

    for cut in range(1, len(data)):
        chunks = [data[:cut], data[cut:], b""]
        codec = case.factory()
        counts = feed(codec, chunks)
        assert counts[0] == sum(0 < e <= cut for e in ends), f"{ctx} cut at {cut}"
        assert sum(counts) == len(case.replies), f"{ctx} cut at {cut}"
        assert codec.replies() == case.texts, f"{ctx} cut at {cut}"
        assert codec.error_replies == case.errors, f"{ctx} cut at {cut}"

    codec = case.factory(keep=False)
    assert sum(feed(codec, [data, b""])) == len(case.replies), ctx
    assert codec.replies() == [] and codec.error_replies == case.errors, ctx
    codec = case.factory(keep=False)
    counts = feed(codec, bytewise(data))
    assert completed_at(counts, [1] * len(data) + [0]) == ends, ctx


def check_malformed(factory: Callable[..., ClientCodec], data: bytes, match: str) -> None:
    """Refused whole and one byte at a time, texts kept or not."""
    for keep in (True, False):
        with pytest.raises(ProtocolError, match=match):
            feed(factory(keep=keep), [data, b""])
        with pytest.raises(ProtocolError, match=match):
            feed(factory(keep=keep), bytewise(data))


def lines_run(fn: Callable[[], object]) -> int:
    """How many Python lines ``fn`` executes (its callees included)."""
    count = 0

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    # A collection could run some earlier test's finalizers (__del__) in
    # the middle, and their lines would count: collect first, none meanwhile.
    gc.collect()
    gc.disable()
    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(old)
        gc.enable()
    return count


# -- the shared interface ------------------------------------------------------

def test_make_builds_every_codec_and_refuses_unknown_ones() -> None:
    for name, cls in CODECS.items():
        codec = make(name)
        assert isinstance(codec, cls) and codec.protocol == name
    with pytest.raises(ValueError, match="unknown protocol 'gopher'"):
        make("gopher")


@pytest.mark.parametrize("name", sorted(CODECS))
def test_replies_are_handed_over_once(name: str) -> None:
    codec = make(name)
    assert codec.replies() == [] and codec.pending == 0 and not codec.closed


@pytest.mark.parametrize("name", sorted(CODECS))
def test_eof_is_reported_once_and_data_after_it_is_a_caller_bug(name: str) -> None:
    codec = make(name)
    assert codec.receive_data(b"") == 0 and codec.closed
    assert codec.receive_data(b"") == 0
    with pytest.raises(RuntimeError):
        codec.receive_data(b"x")


@pytest.mark.parametrize("name", sorted(CODECS))
def test_a_request_is_one_line_of_text(name: str) -> None:
    codec = make(name)
    if name == "postgres":
        with pytest.raises(ValueError, match="NUL"):
            codec.request("SELECT '\0'")
    else:
        with pytest.raises(ValueError, match="one line"):
            codec.request("PING\nPING")


@pytest.mark.parametrize("name", sorted(CODECS))
def test_a_cut_reply_at_eof_is_pending_not_an_error(name: str) -> None:
    codec = make(name)
    cut = {"line": b"hal", "http": b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhal",
           "redis": b"$9\r\nhal", "memcached": b"VALUE k 0 9\r\nhal",
           "postgres": b"R\x00\x00\x00\x08\x00\x00"}[name]
    assert codec.receive_data(cut) == 0
    assert codec.receive_data(b"") == 0
    assert codec.pending == len(cut) and codec.closed


# -- the hot path: no Python loop over bytes -------------------------------------

def _reply(name: str, size: int) -> tuple[ClientCodec, bytes]:
    """A codec past its handshake, and one reply carrying ``size`` bytes."""
    body = b"x" * size
    if name == "line":
        return make(name, keep=False), body + b"\n"
    if name == "http":
        return make(name), b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, body)
    if name == "redis":
        return make(name), b"$%d\r\n%s\r\n" % (size, body)
    if name == "memcached":
        return make(name), b"VALUE k 0 %d\r\n%s\r\nEND\r\n" % (size, body)
    codec = make(name)
    codec.receive_data(b"R\x00\x00\x00\x08\x00\x00\x00\x00Z\x00\x00\x00\x05I")
    row = b"D" + (10 + size).to_bytes(4, "big") + b"\x00\x01" + size.to_bytes(4, "big") + body
    return codec, (b"T\x00\x00\x00\x06\x00\x01" + row + b"C\x00\x00\x00\x0dSELECT 1\x00"
                   + b"Z\x00\x00\x00\x05I")


@pytest.mark.parametrize("name", sorted(CODECS))
def test_a_reply_costs_the_same_python_lines_whatever_its_size(name: str) -> None:
    # warm up first: a first call may fill caches (struct formats, imports)
    # whose lines are paid once, not per reply
    warm_codec, warm = _reply(name, 10)
    warm_codec.receive_data(warm)

    def fewest(size: int) -> int:
        """The fewest lines of three fresh codecs: anything else the
        interpreter ran meanwhile only adds; a per-byte cost is in all three."""
        counts = []
        for _ in range(3):
            codec, reply = _reply(name, size)
            counts.append(lines_run(lambda: codec.receive_data(reply)))
            assert codec.replies_total == 1
        return min(counts)

    small_lines, big_lines = fewest(10), fewest(100_000)
    assert big_lines == small_lines, f"{name}: {small_lines} lines for 10 bytes, {big_lines} for 100 kB"


@pytest.mark.parametrize("name,reply", [("line", b"SLEPT 10\n"), ("redis", b"+PONG\r\n")])
def test_the_fast_path_counts_a_batch_of_replies_in_constant_lines(name: str, reply: bytes) -> None:
    one, many = make(name, keep=False), make(name, keep=False)
    one_lines = lines_run(lambda: one.receive_data(reply))
    many_lines = lines_run(lambda: many.receive_data(reply * 500))
    assert (one.replies_total, many.replies_total) == (1, 500)
    assert many_lines == one_lines


def test_a_reply_still_arriving_is_not_parsed_again_for_each_piece() -> None:
    codec, reply = _reply("redis", 100_000)
    codec.receive_data(reply[:100])  # the bulk length is known from here on
    piece = lines_run(lambda: codec.receive_data(reply[100:200]))
    assert piece <= 12, f"{piece} lines to buffer 100 bytes of a known-length reply"
    assert codec.receive_data(reply[200:]) == 1


def test_there_is_a_codec_for_each_protocol_the_schema_names() -> None:
    from ioschema import PROTOCOLS
    assert tuple(CODECS) == PROTOCOLS
