"""Trace lines, formatted by hand, still say exactly what json.dumps would.

Whatever a payload holds (quotes, backslashes, control characters, bytes
that are not UTF-8, a multi-byte character cut at the preview's end), every
line is one JSON object with the fields docs/schemas.md gives.  Written through a pipe,
read back, parsed with json.loads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from iorun.trace import _LINE_MAX, PIPE_BUF, PREVIEW, Trace


class Pipe:
    """A pipe whose other end is read meanwhile (a full pipe would block the writer)."""

    def __enter__(self) -> int:
        r, self.w = os.pipe()
        self.data = b""
        self.reader = threading.Thread(target=self._read, args=(r,))
        self.reader.start()
        return self.w

    def _read(self, r: int) -> None:
        with os.fdopen(r, "rb") as f:
            self.data = f.read()

    def __exit__(self, *_: object) -> None:
        os.close(self.w)
        self.reader.join(10)


def lines_of(write: Any, level: str = "msg", autoflush: bool = True, model: str = "epoll") -> list[bytes]:
    pipe = Pipe()
    with pipe as fd:
        trace = Trace(model, level, fd=fd, autoflush=autoflush)
        write(trace)
        trace.flush()
    return pipe.data.splitlines()


def parsed(write: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines_of(write, **kwargs)]


def test_event_fields_are_those_of_the_docs() -> None:
    before = time.monotonic()
    [start, recv, close] = parsed(lambda t: (
        t.event("start", host="0.0.0.0", port=12345, somaxconn=None, wall=1.25, trace="msg"),
        t.msg("recv", "172.20.0.3:41830", b"client 1\n"),
        t.conn("close", "172.20.0.3:41830", reason="eof", requests=3)))
    assert start == {"t": start["t"], "ev": "start", "model": "epoll", "pid": os.getpid(),
                     "tid": threading.get_native_id(), "host": "0.0.0.0", "port": 12345,
                     "somaxconn": None, "wall": 1.25, "trace": "msg"}
    assert before <= start["t"] <= recv["t"] <= close["t"] <= time.monotonic()
    assert recv == {"t": recv["t"], "ev": "recv", "model": "epoll", "pid": os.getpid(),
                    "tid": threading.get_native_id(), "conn": "172.20.0.3:41830", "bytes": 9,
                    "data": "client 1\n"}
    assert (close["reason"], close["requests"], close["conn"]) == ("eof", 3, "172.20.0.3:41830")


def test_levels_keep_what_they_promise() -> None:
    def write(t: Trace) -> None:
        t.event("start")
        t.conn("accept", "a:1")
        t.msg("recv", "a:1", b"x\n")
    assert [e["ev"] for e in parsed(write, level="off")] == ["start"]
    assert [e["ev"] for e in parsed(write, level="conn")] == ["start", "accept"]
    assert [e["ev"] for e in parsed(write, level="msg")] == ["start", "accept", "recv"]


NASTY = [
    b'say "hi"\n', b"back\\slash\n", bytes(range(32)) + b"\x7f", b"\xff\xfe\xfd not utf-8\n",
    "é€😀".encode() * 20,  # a four-byte character cut by the 80-byte preview
    b"", b"x" * 100_000, b"\r\n", b"tab\there\n", "snowman ☃\n".encode(),
]


@pytest.mark.parametrize("payload", NASTY)
def test_any_payload_gives_a_line_that_parses(payload: bytes) -> None:
    [event] = parsed(lambda t: t.msg("recv", "a:1", payload))
    assert event["data"] == payload[:PREVIEW].decode("utf-8", "replace")
    assert event["bytes"] == len(payload)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=20))
def test_fuzzed_payloads_and_names_parse(payload: bytes, name: str) -> None:
    def write(t: Trace) -> None:
        t.msg("recv", name, payload, client=name)
        t.msg("send", name, payload)  # the same object again: an echo's reply
        t.msg("send", name, memoryview(payload))
        t.msg("send", name, bytearray(payload))
    events = parsed(write, model=name, autoflush=False)
    assert len(events) == 4
    for event in events:
        assert event["data"] == payload[:PREVIEW].decode("utf-8", "replace")
        assert (event["conn"], event["model"], event["bytes"]) == (name, name, len(payload))
    assert events[0]["client"] == name


def test_a_line_too_long_is_cut_to_its_head_and_says_so() -> None:
    [line] = lines_of(lambda t: t.event("error", "a:1", detail="y" * 10_000))
    assert len(line) < _LINE_MAX < PIPE_BUF
    event = json.loads(line)
    assert event["ev"] == "error" and event["truncated"] > 10_000 and "detail" not in event


def test_buffered_lines_leave_whole_in_writes_below_pipe_buf() -> None:
    """A loop turn's batch is cut at line ends, each write at most PIPE_BUF."""
    writes: list[int] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    pipe = Pipe()
    with pipe as fd:
        trace = Trace("epoll", "msg", fd=fd, autoflush=False)
        for i in range(300):
            trace.event("tick", seq=i, fill="z" * (i * 7 % 900))
        os.write = spy  # type: ignore[assignment]
        try:
            trace.flush()
        finally:
            os.write = real_write  # type: ignore[assignment]
    data = pipe.data
    assert all(n <= PIPE_BUF for n in writes) and len(writes) > 1
    offset = 0
    for n in writes:  # every write ends at a line end
        offset += n
        assert data[offset - 1:offset] == b"\n"
    assert [json.loads(line)["seq"] for line in data.splitlines()] == list(range(300))


def test_each_thread_writes_its_own_tid() -> None:
    tids: list[int] = []

    def write(t: Trace) -> None:
        def one() -> None:
            tids.append(threading.get_native_id())
            t.event("tick")
        threads = [threading.Thread(target=one) for _ in range(5)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert sorted(e["tid"] for e in parsed(write)) == sorted(tids)


def test_a_line_over_pipe_buf_still_leaves_and_the_flush_ends() -> None:
    """An event name too long to cut (it is in the head) goes out alone."""
    found: list[list[dict[str, Any]]] = []
    worker = threading.Thread(target=lambda: found.append(parsed(
        lambda t: (t.event("x" * 5000), t.event("after")), autoflush=False)), daemon=True)
    worker.start()
    worker.join(10)
    assert found, "flush() did not end within 10 s"
    assert [e["ev"] for e in found[0]] == ["x" * 5000, "after"]
