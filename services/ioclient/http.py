"""HTTP/1.1, client side: keep-alive GET (or HEAD) requests, responses in.

Rules:

- A request's text names what to get, the way ioproto/http.py maps paths
  to lines: a lab command becomes a path ("SLEEP 100" -> GET /sleep/100,
  "STATS" -> GET /stats); a text starting with "/" is a path as it is
  ("/index.html"); any other text is echoed (quoted: "a b" -> GET /a%20b).
  Every request is "<METHOD> <path> HTTP/1.1" with "Host: <host>".
- The method is the codec's: HttpClient(method="HEAD") sends HEAD requests
  and reads every response as bodiless.  (A response cannot say whether it
  answers a HEAD, so one codec never mixes the two.)
- A reply is one whole response.  Its body is delimited by, in order:
  none for HEAD, 1xx, 204 and 304; Transfer-Encoding: chunked (chunk
  extensions and trailers skipped); Content-Length; otherwise the close of
  the connection (the reply completes at EOF).
- 1xx interim responses (100 Continue, 103 Early Hints) are skipped: they
  are not replies.  101 Switching Protocols is a ProtocolError.
- "Connection: close", an HTTP/1.0 response without "Connection:
  keep-alive" and a read-to-close body set ``closing``: bytes after such a
  response are a ProtocolError.
- Text of a reply: for 2xx, its body (without one trailing LF or CRLF, so
  the lab's servers read as on the line protocol); otherwise
  b"HTTP <status> <reason>" and ": <body>" if there is one.  A status of
  400 or more is an error reply.
- Malformed status lines, header lines, lengths or chunk framing, a head
  over MAX_HEAD and any transfer coding other than chunked are
  ProtocolErrors.  Lines end with CRLF.

Each head is checked with two regular expressions and searched with
bytes.find (C loops), never byte by byte; a head equal to the previous one
(a keep-alive server repeats itself) is not parsed again.  A response
still arriving is parsed again from its start only once more of it is
there than was missing.
"""

from __future__ import annotations

import re
from typing import Iterator, Optional, Tuple
from urllib.parse import quote

from ioproto.commands import COMMANDS

from .base import MAX_REPLY, Buffer, ClientCodec, Incomplete, ProtocolError

MAX_HEAD = 64 << 10
_STATUS = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([^\r\n]*))?")
_HEADERS = re.compile(rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?")
_PATH_SAFE = "/%?=&:@!$'()*+,;~-._"


# (status, reason, Content-Length or None, chunked?, closes the connection?)
_Head = Tuple[int, bytes, Optional[int], bool, bool]


def _parse_head(head: bytes, max_body: int) -> _Head:
    """Check a response head (without its empty line) and read its framing."""
    status_line = _STATUS.match(head)
    if status_line is None or _HEADERS.fullmatch(head, status_line.end()) is None:
        raise ProtocolError(f"malformed HTTP response head: {head[:80]!r}")
    headers = head[status_line.end():].lower()
    length = None
    for value in _values(headers, b"\r\ncontent-length:"):
        if not value.isdigit() or (length is not None and int(value) != length):
            raise ProtocolError(f"malformed Content-Length: {value[:40]!r}")
        length = int(value)
        if length > max_body:
            raise ProtocolError(f"an HTTP body of {length} bytes is over the limit")
    chunked = False
    for value in _values(headers, b"\r\ntransfer-encoding:"):
        if value != b"chunked":
            raise ProtocolError(f"unsupported transfer coding: {value[:40]!r}")
        chunked = True
    close = status_line.group(1) == b"0"  # HTTP/1.0 closes unless asked not to
    for value in _values(headers, b"\r\nconnection:"):
        tokens = {t.strip() for t in value.split(b",")}
        if b"close" in tokens:
            close = True
        elif b"keep-alive" in tokens:
            close = False
    return int(status_line.group(2)), status_line.group(3) or b"", length, chunked, close


def _values(headers: bytes, name: bytes) -> Iterator[bytes]:
    """The values of every header line starting with ``name`` (CRLF, lower case, colon)."""
    at = headers.find(name)
    while at >= 0:
        end = headers.find(b"\r\n", at + 2)
        yield headers[at + len(name):end if end >= 0 else len(headers)].strip(b" \t")
        at = headers.find(name, at + 2)


class HttpClient(ClientCodec):
    protocol = "http"

    def __init__(self, *, method: str = "GET", host: str = "server", keep: bool = True,
                 max_reply: int = MAX_REPLY) -> None:
        if method not in ("GET", "HEAD"):
            raise ValueError(f"the HTTP codec sends GET or HEAD, not {method!r}")
        super().__init__(keep=keep, max_reply=max_reply)
        self.method = method
        self.host = host
        self.statuses: dict[int, int] = {}  # status code -> replies with it
        self._to_eof = False  # the response being read ends at EOF
        self._searched = 0  # bytes of an unfinished head already searched for its end
        self._last_head = b""
        self._last_parsed: _Head = (0, b"", None, False, False)

    def request(self, text: str) -> bytes:
        if "\r" in text or "\n" in text:
            raise ValueError(f"an HTTP request text is one line: {text[:40]!r}")
        if text.startswith("/"):
            path = quote(text, safe=_PATH_SAFE)
        else:
            word, _, rest = text.partition(" ")
            if word in COMMANDS:
                path = "/" + "/".join([word.lower(), *(quote(w, safe="") for w in rest.split())])
            else:
                path = "/" + quote(text, safe="")
        return f"{self.method} {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()

    def _reply_at(self, buf: Buffer, pos: int) -> tuple[int, int]:
        if self.closing:
            raise ProtocolError("bytes after a response that closes the connection")
        return self._response(buf, pos, eof=False)

    def _eof(self) -> int:
        if not self._to_eof or not self._buf:
            return 0
        end, done = self._response(self._buf, 0, eof=True)
        del self._buf[:end]
        return done

    def _response(self, buf: Buffer, pos: int, eof: bool) -> tuple[int, int]:
        """Parse the response at ``pos``: (where it ends, 1 if it is a reply
        or 0 if it was an interim 1xx)."""
        start, (status, reason, length, chunked, close) = self._head(buf, pos)
        if status < 200:
            if status == 101:
                raise ProtocolError("the server switched protocols; this codec never asks to")
            return start, 0
        end, body, to_eof = self._body(buf, start, status, length, chunked, eof)
        self.closing = close or to_eof
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 400:
            self.error_replies += 1
        if self.keep:
            self._texts.append(self._text(status, reason, bytes(body)))
        return end, 1

    def _head(self, buf: Buffer, pos: int) -> tuple[int, _Head]:
        """The head at ``pos``, checked: where the body starts, and its framing."""
        head_end = buf.find(b"\r\n\r\n", pos + self._searched)
        if head_end < 0 or head_end - pos > MAX_HEAD:
            # Refuse a head still arriving only once it must be too long:
            # its end may already have begun in the last three bytes.
            if len(buf) - pos > MAX_HEAD + 3 or head_end >= 0:
                raise ProtocolError(f"an HTTP response head over {MAX_HEAD} bytes")
            if buf.find(b"\n\n", pos + self._searched) >= 0:
                raise ProtocolError("an HTTP response head with lines not ended by CRLF")
            self._searched = max(0, len(buf) - pos - 3)  # resume there: heads may trickle in
            raise Incomplete(len(buf) + 1)
        self._searched = 0
        head = bytes(buf[pos:head_end])
        if head != self._last_head:  # keep-alive servers repeat their heads
            self._last_parsed = _parse_head(head, self.max_reply)
            self._last_head = head
        return head_end + 4, self._last_parsed

    def _body(self, buf: Buffer, start: int, status: int, length: int | None, chunked: bool,
              eof: bool) -> tuple[int, Buffer, bool]:
        """The body from ``start``: where it ends, its bytes (if kept), and
        whether it was read to the close of the connection."""
        if self.method == "HEAD" or status in (204, 304):
            return start, b"", False
        if chunked:
            end, body = self._chunked(buf, start)
            return end, body, False
        if length is not None:
            end = start + length
            if len(buf) < end:
                raise Incomplete(end)
            return end, buf[start:end] if self.keep else b"", False
        self._to_eof = True  # the body is whatever comes before EOF
        if len(buf) - start > self.max_reply:
            raise ProtocolError(f"an HTTP body over {self.max_reply} bytes")
        if not eof:
            raise Incomplete(start + self.max_reply + 1)
        return len(buf), buf[start:], True

    def _chunked(self, buf: Buffer, pos: int) -> tuple[int, Buffer]:
        """A chunked body from ``pos``: (where it ends, its data)."""
        parts: list[Buffer] = []
        total = 0
        while True:
            eol = self._line_end(buf, pos)
            size_line = _CHUNK_SIZE.fullmatch(buf, pos, eol)
            if size_line is None:
                raise ProtocolError(f"malformed chunk size line: {bytes(buf[pos:eol][:40])!r}")
            size = int(size_line.group(1), 16)
            total += size
            if total > self.max_reply:
                raise ProtocolError(f"a chunked body over {self.max_reply} bytes")
            pos = eol + 2
            if size == 0:
                return self._trailers(buf, pos), b"".join(parts)
            end = pos + size
            if len(buf) < end + 2:
                raise Incomplete(end + 2)
            if buf[end:end + 2] != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF")
            if self.keep:
                parts.append(buf[pos:end])
            pos = end + 2

    def _trailers(self, buf: Buffer, pos: int) -> int:
        """Skip trailer lines up to the empty line; where it ends."""
        end = buf.find(b"\r\n", pos)
        if end == pos:
            return pos + 2
        end = buf.find(b"\r\n\r\n", pos)
        if end - pos > MAX_HEAD or (end < 0 and len(buf) - pos > MAX_HEAD + 3):
            raise ProtocolError(f"HTTP trailers over {MAX_HEAD} bytes")
        if end < 0:
            raise Incomplete(len(buf) + 1)
        if _HEADERS.fullmatch(b"\r\n" + bytes(buf[pos:end])) is None:
            raise ProtocolError("malformed HTTP trailer line")
        return end + 4

    @staticmethod
    def _text(status: int, reason: bytes, body: bytes) -> bytes:
        if 200 <= status < 300:
            if body.endswith(b"\n"):
                return body[:-2] if body.endswith(b"\r\n") else body[:-1]
            return body
        line = b"HTTP %d %s" % (status, reason) if reason else b"HTTP %d" % status
        body = body.strip()
        return line + b": " + body if body else line
