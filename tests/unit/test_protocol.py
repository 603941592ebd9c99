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
