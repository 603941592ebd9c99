"""The server side of one connection, as a state machine: bytes in, events out.

    conn = ServerConnection()
    conn.receive_data(data)          # b"" means the peer has closed its side
    event = conn.next_event()        # Request, NEED_DATA, Close or Reject
    out = conn.send(reply_line)      # the bytes to write for a Request

Rules:

- The framing is chosen once per connection from its first line: an HTTP
  request line selects HTTP/1.1, anything else the line protocol.
- One request is outstanding at a time: after a Request, call send() before
  asking for the next event.  Pipelined input waits in the buffer, so replies
  always leave in request order.
- A line longer than ``max_line`` (or an HTTP head longer than ``max_head``)
  is a Reject: write ``event.data`` and close.  So is malformed HTTP.
- Close means there is nothing left to answer: the peer finished (EOF after
  its last complete request) or an HTTP request asked to close.
- After Close or Reject the connection is finished; every later call to
  next_event() returns the same event again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from . import commands, http
from .commands import Request

MAX_LINE = 1 << 20  # a request line, or an HTTP body
MAX_HEAD = 16 << 10  # an HTTP request line plus headers


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True, slots=True)
class Close:
    """Nothing more to answer.  ``partial`` counts bytes of an unfinished
    request that the peer left behind when it closed."""

    reason: str
    partial: int = 0


@dataclass(frozen=True, slots=True)
class Reject:
    """The input broke the framing: send ``data``, then close."""

    reason: str
    data: bytes


Event = Union[Request, Close, Reject, _NeedData]

# States
DETECT, LINE, HTTP, AWAIT_REPLY, DONE = "detect", "line", "http", "await-reply", "done"


def _head_end(buf: bytearray) -> tuple[int, int]:
    """Where the head ends (the first empty line, CRLF or bare LF), and how
    many bytes the line break and the empty line take: (-1, 0) if not yet."""
    ends = [(i, n) for i, n in ((buf.find(b"\n\r\n"), 3), (buf.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else (-1, 0)


class ServerConnection:
    def __init__(self, max_line: int = MAX_LINE, max_head: int = MAX_HEAD) -> None:
        self.max_line = max_line
        self.max_head = max_head
        self.framing: str | None = None  # "line" or "http" once detected
        self.state = DETECT
        self._buf = bytearray()
        self._eof = False
        self._head: http.Head | None = None  # the HTTP request being answered
        self._final: Close | Reject | None = None
        self._refused = False  # the outstanding Request is an ERR
        self._echoed: tuple[bytes | None, bytes] = (None, b"")  # quick_echo's last line, its reply

    # -- input -----------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.state == DONE:
            return
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event:
        if self.state == LINE:  # the common state first
            return self._next_line()
        if self.state == AWAIT_REPLY:
            raise RuntimeError("send() the reply to the last Request first")
        if self.state == DONE:
            assert self._final is not None
            return self._final
        if self.state == DETECT:
            event = self._detect()
            if event is not None:
                return event
        if self.state == LINE:
            return self._next_line()
        return self._next_http()

    def quick_echo(self, data: bytes) -> bytes | None:
        """The common case in one call: ``data`` is exactly one whole line of
        the line protocol, nothing waits in the buffer, and the line asks for
        an echo.  Then return its framed reply: the conversation is where
        receive_data, next_event and send would have left it.  Otherwise
        return None, having changed nothing: go on with receive_data(data).

        The last line answered here is remembered: a client that sends the
        same line again (every load generator does) costs one comparison."""
        line, reply = self._echoed
        if data == line and self.state == LINE and not self._buf:
            return data if reply is line else reply  # the same line again: known to be an echo
        end = data.find(b"\n")
        if end != len(data) - 1 or end < 0 or self.state != LINE or self._buf or end > self.max_line:
            return None  # not one whole line (the first LF is the last byte), or not now
        reply = data
        if end and data[end - 1] == 13:  # CRLF: the reply ends in LF alone
            reply = data[: end - 1] + b"\n"
        if 65 <= reply[0] <= 90 and commands.parse(reply[:-1]).op != commands.ECHO:
            return None  # an upper-case first word may be a command
        self._echoed = (data, reply)
        return reply

    # -- output ----------------------------------------------------------
    def send(self, reply: bytes) -> bytes:
        """Frame the reply to the outstanding Request."""
        if self.state != AWAIT_REPLY:
            raise RuntimeError("there is no Request to reply to")
        if self.framing == LINE:
            self.state = LINE
            return reply + b"\n"
        head = self._head
        assert head is not None
        self._head = None
        self.state = HTTP
        if not head.keep_alive:
            self._finish(Close("http-close"))
        status = 400 if self._refused else 200
        return http.response(status, reply + b"\n", head, close=not head.keep_alive)

    # -- framing ---------------------------------------------------------
    def _detect(self) -> Event | None:
        end = self._buf.find(b"\n")
        if end < 0:
            return self._incomplete(self.max_line, "line too long")
        first = bytes(self._buf[:end])
        self.framing = HTTP if http.looks_like_request_line(first) else LINE
        self.state = self.framing
        return None

    def _next_line(self) -> Event:
        buf = self._buf
        end = buf.find(b"\n")
        if end < 0:
            return self._incomplete(self.max_line, "line too long")
        if end > self.max_line:
            return self._reject("line too long", b"ERR line too long\n")
        line = bytes(buf[:end])
        del buf[: end + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        return self._request(commands.parse(line))

    def _next_http(self) -> Event:
        buf = self._buf
        end, skip = _head_end(buf)
        if end < 0 or end > self.max_head:
            return self._incomplete(self.max_head, "header section too large", status=431)
        try:
            head = http.parse_head(bytes(buf[:end]), self.max_line)
        except http.HttpError as exc:
            return self._http_reject(exc.status, exc.reason)
        total = end + skip + head.content_length
        if len(buf) < total:
            if self._eof:
                return self._finish(Close("eof", partial=len(buf)))
            return NEED_DATA
        body = bytes(buf[end + skip : total])
        del buf[:total]
        self._head = head
        return self._request(commands.parse(http.request_line(head, body)))

    def _request(self, request: Request) -> Request:
        self.state = AWAIT_REPLY
        self._refused = request.op == commands.ERR
        return request

    def _incomplete(self, limit: int, reason: str, status: int = 0) -> Event:
        if len(self._buf) > limit:
            if status:
                return self._http_reject(status, reason)
            return self._reject(reason, b"ERR " + reason.encode() + b"\n")
        if self._eof:
            return self._finish(Close("eof", partial=len(self._buf)))
        return NEED_DATA

    def _http_reject(self, status: int, reason: str) -> Reject:
        body = reason.encode() + b"\n"
        return self._reject(reason, http.response(status, body, None, close=True))

    def _reject(self, reason: str, data: bytes) -> Reject:
        event = Reject(reason, data)
        self._finish(event)
        return event

    def _finish(self, event: Close | Reject) -> Close | Reject:
        self.state = DONE
        self._final = event
        self._buf.clear()
        return event
