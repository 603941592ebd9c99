"""The redis client codec (ioclient.RedisClient): inline commands, RESP2 replies.

Replies marked "recorded" are the bytes redis-server 7.0.15 sent on this
host to the request in the comment.
"""

from __future__ import annotations

import pytest

from ioclient import RedisClient

from .test_ioclient_codecs import Case, check_case, check_malformed

CASES = [
    Case("recorded simple", RedisClient, [
        (b"+PONG\r\n", b"PONG"),  # PING
        (b"+OK\r\n", b"OK"),  # DEBUG SLEEP 0.5
        (b":6\r\n", b"6"),  # INCR k
        (b"$1\r\n5\r\n", b"5"),  # GET k
        (b"$-1\r\n", b"(nil)"),  # GET nope
        (b"*0\r\n", b"(empty array)"),  # LRANGE nope 0 -1
        (b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"a\nb"),  # LRANGE l 0 -1
    ]),
    Case("recorded errors", RedisClient, [
        (b"-ERR unknown command 'BOGUS', with args beginning with: \r\n",
         b"(error) ERR unknown command 'BOGUS', with args beginning with: "),
        (b"-ERR wrong number of arguments for 'incr' command\r\n",
         b"(error) ERR wrong number of arguments for 'incr' command"),
        (b"-ERR max number of clients reached\r\n",  # a connection past maxclients
         b"(error) ERR max number of clients reached"),
    ], errors=3),
    Case("recorded pipeline", RedisClient,
         [(b"+PONG\r\n", b"PONG")] * 5 + [(b":7\r\n", b"7"), (b":8\r\n", b"8"), (b":9\r\n", b"9")]),
    Case("values", RedisClient, [
        (b"$0\r\n\r\n", b""),
        (b"$4\r\na\r\nb\r\n", b"a\r\nb"),  # a bulk string may hold CRLF
        (b":-12\r\n", b"-12"),
        (b"*-1\r\n", b"(nil)"),
        (b"*3\r\n:1\r\n*2\r\n+x\r\n$-1\r\n-ERR inner\r\n", b"1\nx\n(nil)\n(error) ERR inner"),
        (b"+\r\n", b""),
    ]),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_reply_in_every_feeding(case: Case) -> None:
    check_case(case)


def test_pipelined_replies_of_every_case() -> None:
    check_case(Case("all", RedisClient, [r for c in CASES for r in c.replies],
                    errors=sum(c.errors for c in CASES)))


def test_simple_strings_then_a_bulk_leave_the_fast_path_exactly() -> None:
    codec = RedisClient(keep=False)
    assert codec.receive_data(b"+PONG\r\n+PONG\r\n$3\r\nab") == 2
    assert codec.receive_data(b"c\r\n+PONG\r\n+PO") == 2
    assert codec.receive_data(b"NG\r\n") == 1 and codec.pending == 0


def test_inline_requests() -> None:
    codec = RedisClient()
    assert codec.request("PING") == b"PING\r\n"
    assert codec.request("DEBUG SLEEP 0.5") == b"DEBUG SLEEP 0.5\r\n"
    assert codec.request('SET k "a b"') == b'SET k "a b"\r\n'
    with pytest.raises(ValueError, match="never answered"):
        codec.request("  ")


@pytest.mark.parametrize("data,match", [
    (b"%1\r\n", "not a RESP2 type"),  # a RESP3 map
    (b"_\r\n", "not a RESP2 type"),
    (b"PONG\r\n", "not a RESP2 type"),
    (b":12a\r\n", "integer is not an integer"),
    (b":\r\n", "not an integer"),
    (b"$x\r\n", "bulk length is not an integer"),
    (b"$-2\r\n", "out of range"),
    (b"$3\r\nabcd\r\n", "not followed by CRLF"),
    (b"*-5\r\n", "out of range"),
    (b"*1\r\n!3\r\n", "not a RESP2 type"),
    (b"*1\r\n" * 40 + b":1\r\n", "nested deeper"),
    (b"+PONG\r\n+PONG\r\n:x\r\n", "not an integer"),
])
def test_malformed_replies(data: bytes, match: str) -> None:
    check_malformed(RedisClient, data, match)


def test_limits() -> None:
    check_malformed(lambda keep: RedisClient(keep=keep, max_reply=10), b"$11\r\n", "out of range")
    check_malformed(lambda keep: RedisClient(keep=keep, max_reply=4), b"+ABCDE", "longer than 4")
    assert RedisClient(max_reply=4).receive_data(b"+ABC\r") == 0  # may still end in time
