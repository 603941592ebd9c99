"""HTTP/1.1 framing: a request head and body in, a response out.

Rules (a small, strict subset of RFC 9112, enough for curl, wrk, hey, ab):

- methods GET, HEAD and POST; any other method is answered 501;
- versions HTTP/1.0 and HTTP/1.1; anything else is 505;
- the head (request line and headers) is at most ``max_head`` bytes: 431;
- a body comes only with Content-Length; Transfer-Encoding is 501; a body
  longer than ``max_body`` is 413; a malformed head is 400;
- HTTP/1.1 keeps the connection open unless "Connection: close";
  HTTP/1.0 closes it unless "Connection: keep-alive".

The path names the request: ``/sleep/100`` is the line ``SLEEP 100``,
``/stats`` is ``STATS``; any other path is echoed.  A POST body, when there
is one, is the request line itself (``curl -d 'WORK 1000'``).

Every error response closes the connection: after a framing error the
server cannot know where the next request starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from . import commands

METHODS = frozenset({b"GET", b"HEAD", b"POST"})
KNOWN_METHODS = METHODS | frozenset(
    {b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT"}
)
REASONS = {
    200: b"OK",
    400: b"Bad Request",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    505: b"HTTP Version Not Supported",
}
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HttpError(Exception):
    """A request that cannot be served; ``status`` is the response code."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Head:
    method: bytes
    target: bytes
    version: bytes  # b"1.0" or b"1.1"
    keep_alive: bool
    content_length: int


def looks_like_request_line(line: bytes) -> bool:
    """True when a first line is an HTTP request line, not a text line."""
    parts = line.rstrip(b"\r").split(b" ")
    return (
        len(parts) == 3
        and parts[0] in KNOWN_METHODS
        and parts[2].startswith(b"HTTP/")
    )


def parse_head(raw: bytes, max_body: int) -> Head:
    """Parse a request head (without the blank line that ends it)."""
    lines = raw.split(b"\n")
    method, target, version = _request_line(lines[0].rstrip(b"\r"))
    headers, lengths = _headers(lines[1:])
    if b"transfer-encoding" in headers:
        raise HttpError(501, "Transfer-Encoding is not supported; send Content-Length")
    length = _content_length(lengths, max_body)
    connection = headers.get(b"connection", b"").lower()
    if version == b"HTTP/1.1":
        keep_alive = b"close" not in connection
    else:
        keep_alive = b"keep-alive" in connection
    return Head(method, target, version[5:], keep_alive, length)


def _request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """Method, target and version of a request line we speak."""
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not method or not set(method) <= _TOKEN:
        raise HttpError(400, "malformed method")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    if method not in METHODS:
        raise HttpError(501, "method not implemented")
    return method, target, version


def _headers(lines: list[bytes]) -> tuple[dict[bytes, bytes], set[bytes]]:
    """The header lines by (lower-case) name, and every Content-Length given."""
    headers: dict[bytes, bytes] = {}
    lengths: set[bytes] = set()
    for line in lines:
        line = line.rstrip(b"\r")
        name, colon, value = line.partition(b":")
        if not colon or not name or not set(name) <= _TOKEN:
            raise HttpError(400, "malformed header line")
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"content-length":
            lengths.add(value)
        headers[name] = value
    return headers, lengths


def _content_length(lengths: set[bytes], max_body: int) -> int:
    """The body's length: one Content-Length (repeated alike), or none (0)."""
    if not lengths:
        return 0
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise HttpError(400, "malformed Content-Length")
    length = int(next(iter(lengths)))
    if length > max_body:
        raise HttpError(413, f"body over the limit of {max_body} bytes")
    return length


def request_line(head: Head, body: bytes) -> bytes:
    """The protocol line an HTTP request stands for."""
    if head.method == b"POST" and body:
        return body.rstrip(b"\r\n")
    path = head.target
    if b"://" in path:  # absolute-form: http://host/path
        path = b"/" + path.split(b"://", 1)[1].partition(b"/")[2]
    path = path.partition(b"?")[0]
    segments = path.strip(b"/").split(b"/")
    word = segments[0].upper()
    if word.decode("latin-1") in commands.COMMANDS:
        return b" ".join([word, *segments[1:]])
    return unquote_to_bytes(path).replace(b"\n", b" ")


def response(status: int, body: bytes, head: Head | None, *, close: bool) -> bytes:
    """A complete response; ``head`` is None when the request never parsed."""
    version = b"1.1" if head is None else head.version
    lines = [
        b"HTTP/%s %d %s" % (version, status, REASONS[status]),
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: %d" % len(body),
    ]
    if close:
        lines.append(b"Connection: close")
    elif version == b"1.0":
        lines.append(b"Connection: keep-alive")
    payload = b"" if head is not None and head.method == b"HEAD" else body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload
