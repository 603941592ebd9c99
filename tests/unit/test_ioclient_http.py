"""The HTTP/1.1 client codec (ioclient.HttpClient).

Responses marked "recorded" are the bytes nginx 1.22.1, Apache 2.4.71
(mpm_event) and the lab's epoll model sent on this host.
"""

from __future__ import annotations

from typing import Any

import pytest

from ioclient import HttpClient, ProtocolError

from .test_ioclient_codecs import Case, check_case, check_malformed

NGINX_200 = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 02:33:25 GMT\r\n"
             b"Content-Type: text/html\r\nContent-Length: 6\r\n"
             b"Last-Modified: Tue, 01 Dec 2026 02:33:09 GMT\r\nConnection: keep-alive\r\n"
             b'ETag: "6b0e31e5-6"\r\nAccept-Ranges: bytes\r\n\r\nhello\n')
NGINX_404_BODY = (b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
                  b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
                  b"</body>\r\n</html>\r\n")
NGINX_404 = (b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 02:33:25 GMT\r\n"
             b"Content-Type: text/html\r\nContent-Length: 153\r\nConnection: keep-alive\r\n\r\n"
             + NGINX_404_BODY)
NGINX_CHUNKED = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 02:33:31 GMT\r\n"
                 b"Content-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
                 b"\r\n9\r\naserverb\n\r\n0\r\n\r\n")  # an SSI page
NGINX_CLOSE = NGINX_200.replace(b"Connection: keep-alive", b"Connection: close")  # keepalive_requests
APACHE_CHUNKED = (b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 02:34:05 GMT\r\n"
                  b"Server: Apache/2.4.71 (Debian)\r\nAccept-Ranges: bytes\r\n"
                  b"Transfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n"
                  b"1\r\na\r\n9\r\nt.shtmlb\n\r\n0\r\n\r\n")  # mod_include
APACHE_HEAD_404 = (b"HTTP/1.1 404 Not Found\r\nDate: Tue, 01 Dec 2026 02:34:05 GMT\r\n"
                   b"Server: Apache/2.4.71 (Debian)\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n")
APACHE_HEAD_200 = (b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 02:34:05 GMT\r\n"
                   b"Server: Apache/2.4.71 (Debian)\r\nLast-Modified: Tue, 01 Dec 2026 02:33:09 GMT\r\n"
                   b'ETag: "6-6618958d5a3d8"\r\nAccept-Ranges: bytes\r\nContent-Length: 6\r\n'
                   b"Content-Type: text/html\r\n\r\n")
LAB = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\nSLEPT 100\n"
LAB_ERR = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Length: 41\r\n\r\nERR SLEEP needs a whole number, got b'x'\n")


def head_client(**options: Any) -> HttpClient:
    return HttpClient(method="HEAD", **options)


CASES = [
    Case("recorded nginx", HttpClient, [
        (NGINX_200, b"hello"),
        (NGINX_404, b"HTTP 404 Not Found: " + NGINX_404_BODY.strip()),
        (NGINX_CHUNKED, b"aserverb"),
        (NGINX_CLOSE, b"hello"),
    ], errors=1),
    Case("recorded apache", HttpClient, [(APACHE_CHUNKED, b"at.shtmlb")]),
    Case("recorded apache HEAD", head_client, [
        (APACHE_HEAD_200, b""), (APACHE_HEAD_404, b"HTTP 404 Not Found")], errors=1),
    Case("recorded lab", HttpClient, [
        (LAB, b"SLEPT 100"), (LAB_ERR, b"HTTP 400 Bad Request: ERR SLEEP needs a whole number, got b'x'")],
        errors=1),
    Case("bodiless and interim", HttpClient, [
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n", b""),
        (b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", b"HTTP 304 Not Modified"),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", b""),
        (b"HTTP/1.1 503 \r\ncontent-length:   2  \r\n\r\nno", b"HTTP 503: no"),
    ], errors=1),
    Case("chunked with extensions and trailers", HttpClient, [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
         b"A;name=v\r\n0123456789\r\n2 \r\n\r\n\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", b"0123456789"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", b""),
    ]),
    Case("read to close", HttpClient, [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of it\n", b"all of it"),
    ], eof=True),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_reply_in_every_feeding(case: Case) -> None:
    check_case(case)


def test_pipelined_keep_alive_replies() -> None:
    replies = [r for c in CASES if c.factory is HttpClient and not c.eof for r in c.replies
               if b"Connection: close" not in r[0]]
    check_case(Case("all", HttpClient, replies, errors=3))


@pytest.mark.parametrize("text,target", [
    ("SLEEP 100", "/sleep/100"),
    ("STATS", "/stats"),
    ("WORK 1000", "/work/1000"),
    ("hello", "/hello"),
    ("a b/c", "/a%20b%2Fc"),
    ("sleep 5", "/sleep%205"),  # not a command: commands are upper case
    ("/", "/"),
    ("/index.html?x=1&y=%20", "/index.html?x=1&y=%20"),
    ("/a b", "/a%20b"),
    ("", "/"),
])
def test_requests_map_lab_commands_to_paths(text: str, target: str) -> None:
    assert HttpClient().request(text) == f"GET {target} HTTP/1.1\r\nHost: server\r\n\r\n".encode()


def test_head_and_host_are_the_codecs() -> None:
    codec = HttpClient(method="HEAD", host="nginx:8080")
    assert codec.request("/") == b"HEAD / HTTP/1.1\r\nHost: nginx:8080\r\n\r\n"
    with pytest.raises(ValueError, match="GET or HEAD"):
        HttpClient(method="POST")


def test_close_is_announced_and_nothing_may_follow() -> None:
    codec = HttpClient()
    assert codec.receive_data(NGINX_200) == 1 and not codec.closing
    assert codec.receive_data(NGINX_CLOSE) == 1 and codec.closing
    with pytest.raises(ProtocolError, match="after a response that closes"):
        codec.receive_data(NGINX_200)
    http10 = HttpClient()
    assert http10.receive_data(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == 1 and http10.closing
    kept = HttpClient()
    kept.receive_data(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
    assert not kept.closing


def test_statuses_are_counted() -> None:
    codec = HttpClient(keep=False)
    assert codec.receive_data(NGINX_200 + NGINX_404 + NGINX_200) == 3
    assert codec.statuses == {200: 2, 404: 1} and codec.error_replies == 1


@pytest.mark.parametrize("data,match", [
    (b"HTTP/2 200 OK\r\n\r\n", "malformed HTTP response head"),
    (b"HTTP/1.1 20 OK\r\n\r\n", "malformed HTTP response head"),
    (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "malformed HTTP response head"),
    (b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "malformed HTTP response head"),
    (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "not ended by CRLF"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer coding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "not followed by CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", "trailer"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "switched protocols"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000 + b"\r\n", "head over"),
])
def test_malformed_responses(data: bytes, match: str) -> None:
    check_malformed(HttpClient, data, match)


def test_limits() -> None:
    small = lambda keep: HttpClient(keep=keep, max_reply=4)  # noqa: E731
    check_malformed(small, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "over the limit")
    check_malformed(small, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\n",
                    "chunked body over")
    check_malformed(small, b"HTTP/1.1 200 OK\r\n\r\n12345", "body over")
