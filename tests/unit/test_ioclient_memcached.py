"""The memcached client codec (ioclient.MemcachedClient): text protocol.

Replies marked "recorded" are the bytes memcached 1.6.18 sent on this host
to the request in the comment.
"""

from __future__ import annotations

import pytest

from ioclient import MemcachedClient

from .test_ioclient_codecs import Case, check_case, check_malformed

CASES = [
    Case("recorded", MemcachedClient, [
        (b"VERSION 1.6.18\r\n", b"VERSION 1.6.18"),  # version
        (b"STORED\r\n", b"STORED"),  # set k 0 0 5 hello
        (b"VALUE k 0 5\r\nhello\r\nEND\r\n", b"VALUE k 0 5\r\nhello\r\nEND"),  # get k
        (b"END\r\n", b"END"),  # get nope
        (b"VALUE k 0 5 1\r\nhello\r\nEND\r\n", b"VALUE k 0 5 1\r\nhello\r\nEND"),  # gets k
        (b"VALUE k 0 5\r\nhello\r\nVALUE k 0 5\r\nhello\r\nEND\r\n",  # get k k
         b"VALUE k 0 5\r\nhello\r\nVALUE k 0 5\r\nhello\r\nEND"),
        (b"12\r\n", b"12"),  # incr n 5
        (b"NOT_FOUND\r\n", b"NOT_FOUND"),  # delete nope
        (b"VA 5\r\nhello\r\n", b"VA 5\r\nhello"),  # mg k v
        (b"MN\r\n", b"MN"),  # mn
        (b"TOUCHED\r\n", b"TOUCHED"),  # touch k 10
    ]),
    Case("recorded errors", MemcachedClient, [
        (b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",  # incr k 1
         b"CLIENT_ERROR cannot increment or decrement non-numeric value"),
        (b"ERROR\r\n", b"ERROR"),  # bogus
        (b"CLIENT_ERROR bad command line format\r\n",  # set k 0 0 x y
         b"CLIENT_ERROR bad command line format"),
        (b"ERROR Too many open connections\r\n",  # a connection past -c
         b"ERROR Too many open connections"),
    ], errors=4),
    Case("listings", MemcachedClient, [
        (b"STAT pid 1\r\nSTAT uptime 5\r\nEND\r\n", b"STAT pid 1\r\nSTAT uptime 5\r\nEND"),
        (b"PREFIX k get 1 hit 1 set 1 del 0\r\nEND\r\n", b"PREFIX k get 1 hit 1 set 1 del 0\r\nEND"),
        (b"ITEM k [5 b; 0 s]\r\nEND\r\n", b"ITEM k [5 b; 0 s]\r\nEND"),
        (b"key=k exp=-1 la=1 cas=1 fetch=no cls=1 size=63\r\nEND\r\n",
         b"key=k exp=-1 la=1 cas=1 fetch=no cls=1 size=63\r\nEND"),
    ]),
    Case("data with line ends", MemcachedClient, [
        (b"VALUE k 3 4\r\n\r\nEN\r\nVALUE j 0 0\r\n\r\nEND\r\n",
         b"VALUE k 3 4\r\n\r\nEN\r\nVALUE j 0 0\r\n\r\nEND"),
        (b"VALUE k 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n",
         b"VALUE k 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response"),
        (b"VA 0 f\r\n\r\n", b"VA 0 f\r\n"),
    ], errors=1),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_reply_in_every_feeding(case: Case) -> None:
    check_case(case)


def test_pipelined_replies_of_every_case() -> None:
    check_case(Case("all", MemcachedClient, [r for c in CASES for r in c.replies],
                    errors=sum(c.errors for c in CASES)))


@pytest.mark.parametrize("text,wire", [
    ("version", b"version\r\n"),
    ("get k", b"get k\r\n"),
    ("set k 0 0 5 hello", b"set k 0 0 5\r\nhello\r\n"),
    ("set k 0 0 11 hello world", b"set k 0 0 11\r\nhello world\r\n"),
    ("set k 0 0 7 noreply", b"set k 0 0 7\r\nnoreply\r\n"),  # the data is "noreply"
    ("set k 0 0 2 noreply hi", b"set k 0 0 2 noreply\r\nhi\r\n"),
    ("add k 1 60 0", b"add k 1 60 0\r\n\r\n"),
    ("cas k 0 0 2 77 hi", b"cas k 0 0 2 77\r\nhi\r\n"),
    ("append k 0 0 2 \u00e9", b"append k 0 0 2\r\n\xc3\xa9\r\n"),  # sizes count bytes
    ("append k 0 0 1 \u00e9", None),
    ("ms k 2 T0 hi", b"ms k 2 T0\r\nhi\r\n"),
    ("set k 0 0 x y", b"set k 0 0 x y\r\n"),  # no size: sent as written, the server refuses it
])
def test_requests(text: str, wire: bytes | None) -> None:
    codec = MemcachedClient()
    if wire is None:
        with pytest.raises(ValueError, match="1 bytes of data"):
            codec.request(text)  # the size counts bytes: "\u00e9" is two
    else:
        assert codec.request(text) == wire


@pytest.mark.parametrize("text", ["set k 0 0 5 hell", "set k 0 0 5", "set k 0 0 3 abcd", "  "])
def test_requests_refused(text: str) -> None:
    with pytest.raises(ValueError):
        MemcachedClient().request(text)


@pytest.mark.parametrize("data,match", [
    (b"\r\n", "empty line"),
    (b"VALUE k 0\r\n", "malformed"),
    (b"VALUE k 0 5 1 2\r\n", "malformed"),
    (b"VALUE k 0 x\r\n", "not a number"),
    (b"VALUE k 0 2\r\nabc\r\nEND\r\n", "not followed by CRLF"),
    (b"VALUE k 0 1\r\na\r\nSTORED\r\n", "inside a get reply"),
    (b"STAT a 1\r\nVALUE k 0 1\r\n", "inside a listing"),
    (b"VA x\r\n", "not a number"),
    (b"VA\r\n", None),  # not "VA ": a one-line reply, see below
])
def test_malformed_replies(data: bytes, match: str | None) -> None:
    if match is None:
        assert MemcachedClient().receive_data(data) == 1
    else:
        check_malformed(MemcachedClient, data, match)


def test_limits() -> None:
    check_malformed(lambda keep: MemcachedClient(keep=keep, max_reply=12), b"VALUE k 0 13\r\n", "over the limit")
    check_malformed(lambda keep: MemcachedClient(keep=keep, max_reply=4), b"STORED", "longer than 4")
