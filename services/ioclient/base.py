"""What every client codec shares: the buffer, the counters, the interface.

Rules common to all codecs:

- ``handshake()`` is what to write right after connect (b"" if nothing);
  ``request(text)`` encodes one request and keeps no state, so a caller may
  encode a request once and write the same bytes many times.
- ``receive_data(data)`` returns how many replies to requests it completed;
  b"" means the server closed its side.  Replies never depend on which
  request was sent: each codec frames replies from the reply bytes alone
  (HTTP HEAD is a per-codec choice, see http.py).
- ``replies()`` hands over the texts of the replies completed so far, when
  ``keep`` is true.  With ``keep`` false replies are only counted: the
  swarm's fast path.  ``keep`` may be flipped at any time (a reply already
  half-read when it is turned on may come with part of its text).
- A reply that breaks the protocol raises ProtocolError; after that the
  codec is unusable.  A server-side error reply (redis -ERR, an HTTP 4xx or
  5xx, postgres ErrorResponse, memcached ERROR) is a reply: its text says so
  and ``error_replies`` counts it.
- EOF never raises: ``pending`` tells how many bytes of a cut reply were
  left, and ``closing`` whether the server had announced the close.

Internals: the undecoded bytes live in one buffer; ``_parse`` decodes as
many replies as it can and returns (count, bytes consumed).  ``_need`` is
the buffer length below which ``_parse`` cannot progress: a length-prefixed
body that is still arriving is not parsed again for each piece of it.  The
codecs that walk their replies one by one (http, redis, memcached) give
``_reply_at`` to ``_each_reply``, which raises ``Incomplete`` where a reply
goes on past the buffer; ``_line_end`` finds where a CRLF line ends.
"""

from __future__ import annotations

from typing import ClassVar, Union

from ioproto import ProtocolViolation

Buffer = Union[bytes, bytearray]

MAX_REPLY = 64 << 20  # bytes: a declared length past this is a broken server


class ProtocolError(ProtocolViolation):
    """The server sent bytes that break the protocol this codec speaks.

    A ProtocolViolation (ioproto's error for a line-protocol reply past its
    limit), so a caller that handles one handles both."""


class Refused(ProtocolError):
    """The server refused the session before it was ready (e.g. postgres
    "too many clients"); ``text`` is what the server said."""

    def __init__(self, text: bytes) -> None:
        super().__init__(text.decode("utf-8", "replace"))
        self.text = text


class Incomplete(Exception):
    """The reply goes on past the buffer: wait until it is ``need`` bytes long."""

    def __init__(self, need: int) -> None:
        self.need = need


class ClientCodec:
    """The interface of every codec, and the buffering they share."""

    protocol: ClassVar[str] = ""

    def __init__(self, *, keep: bool = True, max_reply: int = MAX_REPLY) -> None:
        self.keep = keep
        self.max_reply = max_reply
        self.ready = True  # handshake done; postgres starts False
        self.closed = False  # EOF received
        self.closing = False  # the server said it will close after its last reply
        self.replies_total = 0
        self.error_replies = 0
        self._texts: list[bytes] = []
        self._buf = bytearray()
        self._need = 1

    # -- the interface -----------------------------------------------------
    def handshake(self) -> bytes:
        return b""

    def request(self, text: str) -> bytes:
        raise NotImplementedError

    def receive_data(self, data: bytes) -> int:
        if not data:
            if self.closed:
                return 0
            self.closed = True
            n = self._eof()
            self.replies_total += n
            return n
        if self.closed:
            raise RuntimeError("receive_data() after EOF")
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return 0
            n, pos = self._parse(buf)
            if pos:
                del buf[:pos]
        else:
            # The common case: nothing left over, so parse the bytes as they
            # came, without copying them into the buffer first.
            if len(data) < self._need:
                buf += data
                return 0
            n, pos = self._parse(data)
            if pos < len(data):
                buf += memoryview(data)[pos:]
        self.replies_total += n
        return n

    def replies(self) -> list[bytes]:
        """Texts of the replies completed since the last call (if ``keep``)."""
        texts = self._texts
        self._texts = []
        return texts

    @property
    def pending(self) -> int:
        """Bytes of an unfinished reply (non-zero at EOF means a cut reply)."""
        return len(self._buf)

    # -- for subclasses ------------------------------------------------------
    def _parse(self, buf: Buffer) -> tuple[int, int]:
        """Decode complete replies from ``buf``; set ``_need``; return
        (replies completed, bytes consumed)."""
        return self._each_reply(buf)

    def _each_reply(self, buf: Buffer) -> tuple[int, int]:
        """``_reply_at`` reply after reply, up to one still arriving."""
        n = pos = 0
        size = len(buf)
        while pos < size:
            try:
                end, done = self._reply_at(buf, pos)
            except Incomplete as wait:
                self._need = wait.need - pos
                return n, pos
            pos = end
            n += done
        self._need = 1
        return n, pos

    def _reply_at(self, buf: Buffer, pos: int) -> tuple[int, int]:
        """The reply at ``pos`` (its text kept if ``keep``): where it ends,
        and 1 (0 if it answers no request: an HTTP 1xx)."""
        raise NotImplementedError

    def _line_end(self, buf: Buffer, pos: int) -> int:
        """Where the CRLF line at ``pos`` ends (its CR)."""
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            self._check_line(buf, pos)
            raise Incomplete(len(buf) + 1)
        if eol - pos > self.max_reply:
            raise ProtocolError(f"a {self.protocol} line longer than {self.max_reply} bytes")
        return eol

    def _eof(self) -> int:
        """The server closed: replies that EOF completes (HTTP read-to-close)."""
        return 0

    def _check_line(self, buf: Buffer, start: int) -> None:
        """No line terminator yet: refuse a line that has grown past reason
        (one byte of slack: the CR of a CRLF may have come without its LF)."""
        if len(buf) - start > self.max_reply + 1:
            raise ProtocolError(f"a {self.protocol} line longer than {self.max_reply} bytes")


def whole_number(raw: Buffer, what: str, shown: Buffer | None = None, signed: bool = False) -> int:
    """A number a reply states in decimal digits (after a "-" if ``signed``);
    else a ProtocolError naming ``what`` and showing ``shown`` (or ``raw``)."""
    digits = raw[1:] if signed and raw[:1] == b"-" else raw
    if not digits.isdigit():
        kind = "an integer" if signed else "a number"
        raise ProtocolError(f"{what} is not {kind}: {bytes((raw if shown is None else shown)[:60])!r}")
    return int(raw)


def encode_text(text: str, what: str) -> bytes:
    """A request's text as bytes, refusing line breaks that would split it."""
    data = text.encode()
    if b"\n" in data or b"\r" in data:
        raise ValueError(f"a {what} request is one line: {text[:40]!r}")
    return data
