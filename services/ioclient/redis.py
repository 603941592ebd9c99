"""Redis, client side: inline commands out, RESP2 replies in.

Rules:

- A request is an inline command, one line: "PING", "DEBUG SLEEP 0.5",
  "GET k", "INCR k" are sent as the text plus CRLF (redis splits it on
  spaces and honours quotes).  An empty text is refused: redis would
  silently ignore an empty line and never answer it.
- A reply is one complete top-level RESP2 value:
    +text          simple string   text: b"PONG"
    -ERR message   error           text: b"(error) ERR message"
    :5             integer         text: b"5"
    $n + n bytes   bulk string     text: the bytes; $-1 is b"(nil)"
    *n + n values  array (nested)  text: the elements' texts joined by
                                   b"\\n"; *-1 is b"(nil)", *0 b"(empty array)"
  Every line ends with CRLF; a bulk string's bytes are followed by CRLF.
- Anything else (a RESP3 type, a malformed length or integer, a missing
  CRLF after a bulk string, arrays nested past MAX_DEPTH) is a
  ProtocolError.  Replies answer requests in order.
- A server that refuses a connection (maxclients) sends one error and
  closes: that error is counted as the reply to the first request.

Hot path: when texts are not kept, a buffer of simple strings only
("+PONG", "+OK") is counted and checked with three bytes.count calls;
anything else is walked value by value (never byte by byte).
"""

from __future__ import annotations

from .base import Buffer, ClientCodec, Incomplete, ProtocolError, encode_text, whole_number

MAX_DEPTH = 32
_NIL = b"(nil)"


def _number(raw: Buffer, what: str) -> int:
    return whole_number(raw, f"redis {what}", signed=True)


class RedisClient(ClientCodec):
    protocol = "redis"

    def request(self, text: str) -> bytes:
        data = encode_text(text, "redis")
        if not data.strip():
            raise ValueError("an empty redis request is never answered")
        return data + b"\r\n"

    def _parse(self, buf: Buffer) -> tuple[int, int]:
        fast = self._simple_lines(buf)
        return fast if fast is not None else self._each_reply(buf)

    def _reply_at(self, buf: Buffer, pos: int) -> tuple[int, int]:
        end, text = self._value(buf, pos, 0)
        if self.keep:
            self._texts.append(text)
        return end, 1

    def _simple_lines(self, buf: Buffer) -> tuple[int, int] | None:
        """Count a buffer of simple-string lines in C; None: walk it instead."""
        if self.keep or buf[0] != 43 or len(buf) > self.max_reply:
            return None
        end = buf.rfind(b"\r\n") + 2
        n = buf.count(b"\r\n", 0, end)
        # Every line starts with "+" and every LF ends a CRLF: nothing but
        # simple strings, and none of them needs a closer look.
        if n and buf.count(b"\n+", 0, end) == n - 1 and buf.count(b"\n", 0, end) == n:
            self._need = 1
            return n, end
        return None

    def _value(self, buf: Buffer, pos: int, depth: int) -> tuple[int, bytes]:
        """Decode the value at ``pos``: (where it ends, its text)."""
        eol = self._line_end(buf, pos)
        kind = buf[pos]
        line = buf[pos + 1:eol]
        if kind == 43:  # + simple string
            return eol + 2, bytes(line) if self.keep else b""
        if kind == 45:  # - error
            self.error_replies += depth == 0
            return eol + 2, b"(error) " + bytes(line) if self.keep else b""
        if kind == 58:  # : integer
            _number(line, "integer")
            return eol + 2, bytes(line) if self.keep else b""
        if kind == 36:  # $ bulk string
            return self._bulk(buf, eol, _number(line, "bulk length"))
        if kind == 42:  # * array
            return self._array(buf, eol, _number(line, "array length"), depth)
        raise ProtocolError(f"redis reply starts with {bytes([kind])!r}, not a RESP2 type")

    def _bulk(self, buf: Buffer, eol: int, length: int) -> tuple[int, bytes]:
        """A bulk string of ``length`` bytes after the line ending at ``eol``."""
        if length == -1:
            return eol + 2, _NIL
        if not 0 <= length <= self.max_reply:
            raise ProtocolError(f"redis bulk length {length} out of range")
        start = eol + 2
        end = start + length
        if len(buf) < end + 2:
            raise Incomplete(end + 2)
        if buf[end:end + 2] != b"\r\n":
            raise ProtocolError("redis bulk string not followed by CRLF")
        return end + 2, bytes(buf[start:end]) if self.keep else b""

    def _array(self, buf: Buffer, eol: int, count: int, depth: int) -> tuple[int, bytes]:
        """An array of ``count`` values after the line ending at ``eol``."""
        if count == -1:
            return eol + 2, _NIL
        if count < -1:
            raise ProtocolError(f"redis array length {count} out of range")
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"redis arrays nested deeper than {MAX_DEPTH}")
        pos = eol + 2
        texts = []
        for _ in range(count):
            pos, text = self._value(buf, pos, depth + 1)
            texts.append(text)
        if not self.keep:
            return pos, b""
        return pos, b"\n".join(texts) if texts else b"(empty array)"
