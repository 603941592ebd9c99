"""The protocol core, without any I/O: every input also fed one byte at a time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ioproto import (
    NEED_DATA, Close, LineClient, Reject, Request, ServerConnection, answer, parse,
)


def converse(chunks: list[bytes], max_line: int = 1 << 20) -> list[object]:
    """Feed chunks, answer every Request, return events and bytes written."""
    conn = ServerConnection(max_line=max_line)
    out: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            out.append(event)
            if isinstance(event, Request):
                value = {"STATS": {"pid": 1}, "WORK": 7, "INCR": 3}.get(event.op)
                out.append(conn.send(answer(event, value)))
            else:
                return out
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))] + [b""]


CASES = [
    b"client 3\nSLEEP 50\nBLOCK 10\nWORK 100\nINCR 2\nSTATS\n",
    b"hello\r\nworld\n",
    b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /stats HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 8\r\n\r\nSLEEP 10",
    b"GET /x HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"PUT / HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"partial line without newline",
    # found by the fuzz campaign: the head ends at the FIRST empty line, LF or CRLF
    b"GET / HTTP/1.1\n\nGET /x HTTP/1.1\r\n\r\n",
]


@pytest.mark.parametrize("data", CASES)
def test_one_byte_at_a_time_gives_the_same_conversation(data: bytes) -> None:
    assert converse(bytewise(data)) == converse([data, b""])


def test_line_protocol_requests_and_replies() -> None:
    out = converse([b"client 3\nSLEEP 50\nWORK 100\nINCR 2\nSTATS\nSLEEP x\n", b""])
    assert out == [
        Request("ECHO", 0, b"client 3"), b"client 3\n",
        Request("SLEEP", 50, b"SLEEP 50"), b"SLEPT 50\n",
        Request("WORK", 100, b"WORK 100"), b"WORKED 100 7\n",
        Request("INCR", 2, b"INCR 2"), b"COUNT 3\n",
        Request("STATS", 0, b"STATS"), b'{"pid":1}\n',
        Request("ERR", 0, b"SLEEP needs a whole number, got b'x'"),
        b"ERR SLEEP needs a whole number, got b'x'\n",
        Close("eof"),
    ]


def test_commands_are_exact_words() -> None:
    assert parse(b"SLEEPY 5").op == "ECHO"
    assert parse(b"sleep 5").op == "ECHO"
    assert parse(b"STATS now").op == "ERR"
    assert parse(b"SLEEP 600001").op == "ERR"
    assert parse(b"\xff\xfe").op == "ECHO"


def test_http_routes_and_keep_alive() -> None:
    out = converse([b"GET /sleep/10 HTTP/1.1\r\nHost: a\r\n\r\nGET /a%20b HTTP/1.0\r\n\r\n"])
    assert out[0] == Request("SLEEP", 10, b"SLEEP 10")
    assert out[1].startswith(b"HTTP/1.1 200 OK\r\n") and out[1].endswith(b"\r\n\r\nSLEPT 10\n")
    assert out[2] == Request("ECHO", 0, b"/a b")
    assert b"Connection: close" in out[3]  # HTTP/1.0 without keep-alive
    assert out[4] == Close("http-close")


def test_http_errors_are_rejected_with_a_status() -> None:
    def status(data: bytes) -> bytes:
        event = converse([data])[-1]
        assert isinstance(event, Reject)
        return event.data.split(b"\r\n")[0]

    assert status(b"GET / HTTP/1.1\r\nbad\r\n\r\n") == b"HTTP/1.1 400 Bad Request"
    assert status(b"GET / HTTP/3.0\r\n\r\n") == b"HTTP/1.1 505 HTTP Version Not Supported"
    assert status(b"DELETE / HTTP/1.1\r\n\r\n") == b"HTTP/1.1 501 Not Implemented"
    assert status(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n") == b"HTTP/1.1 400 Bad Request"
    assert status(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 5000) == \
        b"HTTP/1.1 431 Request Header Fields Too Large"


def test_head_gets_no_body_and_bad_arguments_get_400() -> None:
    out = converse([b"HEAD /hello HTTP/1.1\r\n\r\nGET /sleep/x HTTP/1.1\r\n\r\n"])
    assert out[1].endswith(b"Content-Length: 7\r\n\r\n")
    assert out[3].startswith(b"HTTP/1.1 400 Bad Request")


def test_oversized_line_is_rejected() -> None:
    out = converse([b"x" * 101], max_line=100)
    assert out == [Reject("line too long", b"ERR line too long\n")]
    out = converse([b"y" * 150 + b"\n"], max_line=100)
    assert out == [Reject("line too long", b"ERR line too long\n")]


def test_reply_must_be_sent_before_the_next_event() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a\nb\n")
    assert conn.next_event() == Request("ECHO", 0, b"a")
    with pytest.raises(RuntimeError):
        conn.next_event()


def test_client_splits_replies() -> None:
    client = LineClient()
    assert client.request(b"hi") == b"hi\n"
    client.receive_data(b"one\ntw")
    assert client.replies() == [b"one"]
    client.receive_data(b"o\nthree\n")
    assert client.replies() == [b"two", b"three"]
    assert client.pending_bytes == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_any_input_in_any_chunking_gives_the_same_events(data: bytes, step: int) -> None:
    chunks = [data[i:i + step] for i in range(0, len(data), step)] + [b""]
    assert converse(chunks, max_line=200) == converse([data, b""], max_line=200)


def test_mixed_line_endings_keep_requests_apart() -> None:
    out = converse([b"GET / HTTP/1.1\n\nGET /x HTTP/1.1\r\n\r\n"])
    assert [e for e in out if isinstance(e, Request)] == [Request("ECHO", 0, b"/"), Request("ECHO", 0, b"/x")]


# -- quick_echo: the adapters' fast path answers exactly as the full path -------

def quick_converse(chunks: list[bytes], max_line: int = 1 << 20) -> list[object]:
    """converse(), but as the adapters drive it: each chunk is offered to
    quick_echo first and fed through receive_data only when it declines.
    Returns only the bytes written and the final event."""
    conn = ServerConnection(max_line=max_line)
    out: list[object] = []
    for chunk in chunks:
        reply = conn.quick_echo(chunk)
        if reply is not None:
            out.append(reply)
            continue
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, Request):
                value = {"STATS": {"pid": 1}, "WORK": 7, "INCR": 3}.get(event.op)
                out.append(conn.send(answer(event, value)))
            else:
                out.append(event)
                return out
    return out


def written(conversation: list[object]) -> list[object]:
    return [x for x in conversation if not isinstance(x, Request)]


def test_quick_echo_answers_one_whole_echo_line_only() -> None:
    conn = ServerConnection()
    assert conn.quick_echo(b"first\n") is None  # the first line picks the framing: full path
    conn.receive_data(b"first\n")
    assert conn.send(answer(conn.next_event())) == b"first\n"
    assert conn.next_event() is NEED_DATA
    assert conn.quick_echo(b"hello\n") == b"hello\n"
    assert conn.quick_echo(b"crlf\r\n") == b"crlf\n"
    assert conn.quick_echo(b"\n") == b"\n"
    assert conn.quick_echo(b"Hello world\n") == b"Hello world\n"  # upper case, but no command
    assert conn.quick_echo(b"crlf\r\n") == b"crlf\n"  # the same line again: remembered
    for declined in (b"", b"two\nlines\n", b"no newline", b"SLEEP 5\n", b"STATS\n", b"WORK x\n"):
        assert conn.quick_echo(declined) is None, declined
    conn.receive_data(b"part")  # something waits in the buffer: the next line completes it
    assert conn.quick_echo(b"ial\n") is None
    assert conn.quick_echo(b"crlf\r\n") is None  # remembered, but not now


def test_quick_echo_respects_max_line() -> None:
    conn = ServerConnection(max_line=10)
    conn.receive_data(b"a\n")
    conn.send(answer(conn.next_event()))
    assert conn.next_event() is NEED_DATA
    assert conn.quick_echo(b"x" * 10 + b"\n") == b"x" * 10 + b"\n"
    assert conn.quick_echo(b"x" * 11 + b"\n") is None  # the full path rejects it


def test_quick_echo_is_declined_for_http() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    conn.send(answer(conn.next_event()))
    assert conn.next_event() is NEED_DATA
    assert conn.quick_echo(b"hello\n") is None


@pytest.mark.parametrize("data", CASES)
def test_quick_path_gives_the_same_conversation(data: bytes) -> None:
    lines = [line + b"\n" for line in data.split(b"\n")]
    assert written(quick_converse(lines + [b""])) == written(converse(lines + [b""]))
    assert written(quick_converse(bytewise(data))) == written(converse([data, b""]))


LINE_CHUNKS = st.lists(st.one_of(
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"") + b"\n"),  # one whole line
    st.sampled_from([b"SLEEP 5\n", b"STATS\n", b"x\r\n", b"\r\n", b"\n", b"A\n", b"GET / HTTP/1.1\r\n\r\n"]),
    st.binary(max_size=30),  # anything: parts of lines, several lines
), max_size=12)


@settings(max_examples=2000, deadline=None)
@given(LINE_CHUNKS, st.integers(min_value=1, max_value=300))
def test_quick_path_never_changes_a_reply(chunks: list[bytes], max_line: int) -> None:
    assert written(quick_converse(chunks + [b""], max_line)) == written(converse(chunks + [b""], max_line))
