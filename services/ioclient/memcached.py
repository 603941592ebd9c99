"""memcached's text protocol, client side.

Rules:

- A request is one command line, sent with CRLF: "version", "get k",
  "incr k 1", "delete k", "stats".  A storage command carries its data
  after the command line and a space, and the data is the last ``bytes``
  bytes of the text:
      "set k 0 0 5 hello"  ->  b"set k 0 0 5\\r\\nhello\\r\\n"
      "cas k 0 0 2 77 hi"  ->  b"cas k 0 0 2 77\\r\\nhi\\r\\n"
      "ms k 2 T0 hi"       ->  b"ms k 2 T0\\r\\nhi\\r\\n"   (meta set: size is the 3rd word)
  (set, add, replace, append, prepend take "cmd key flags exptime bytes
  [noreply]", cas one more number).  A "noreply" command gets no reply.
- A reply is framed from its own first line, whatever was asked:
    VALUE key flags bytes [cas] + data lines, then END   one reply (get hit)
    STAT / ITEM / PREFIX / key= lines, then END          one reply (stats, dumps)
    VA size flags + data                                 one reply (meta get)
    any other line                                       one reply (STORED,
        END, VERSION x, DELETED, a number, HD, EN, ERROR, CLIENT_ERROR x, ...)
  Its text is the reply as received, without the final CRLF.
- ERROR, CLIENT_ERROR and SERVER_ERROR lines are error replies; one inside
  a get or stats listing ends it.  Any other unexpected line inside one, an
  empty line, a malformed VALUE/VA line, data not followed by CRLF is a
  ProtocolError.
- A server that refuses a connection (too many open connections) sends one
  error line and closes: it counts as the reply to the first request.

Replies are walked one at a time, line by line (never byte by byte).
"""

from __future__ import annotations

from .base import Buffer, ClientCodec, Incomplete, ProtocolError, encode_text, whole_number

# Where a storage command line names its data size (word index).
_SIZE_WORD = {b"set": 4, b"add": 4, b"replace": 4, b"append": 4, b"prepend": 4,
              b"cas": 4, b"ms": 2}
_LISTING = (b"STAT ", b"ITEM ", b"PREFIX ", b"key=")
_ERRORS = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


class MemcachedClient(ClientCodec):
    protocol = "memcached"

    def request(self, text: str) -> bytes:
        raw = text.encode()
        words = raw.split(b" ")
        where = _SIZE_WORD.get(words[0])
        if where is None or len(words) <= where or not words[where].isdigit():
            # Not a storage command with a size: one line, as written (a
            # malformed one is the server's to refuse).
            line = encode_text(text, "memcached")
            if not line.strip():
                raise ValueError("an empty memcached request")
            return line + b"\r\n"
        size = int(words[where])
        line, data = (raw, b"") if size == 0 else (raw[:-size - 1], raw[-size:])
        if size and (len(raw) <= size or raw[-size - 1] != 32
                     or len(line.split(b" ")) <= where):
            raise ValueError(f"memcached {words[0].decode()}: the text must end with a space "
                             f"and {size} bytes of data: {text[:60]!r}")
        if b"\r" in line or b"\n" in line:
            raise ValueError(f"a memcached command line is one line: {text[:60]!r}")
        return line + b"\r\n" + data + b"\r\n"

    def _reply_at(self, buf: Buffer, pos: int) -> tuple[int, int]:
        end = self._reply(buf, pos)
        if self.keep:
            self._texts.append(bytes(buf[pos:end - 2]))
        return end, 1

    def _line(self, buf: Buffer, pos: int) -> int:
        """Where the line at ``pos`` ends (its CR)."""
        eol = self._line_end(buf, pos)
        if eol == pos:
            raise ProtocolError("memcached sent an empty line")
        return eol

    def _reply(self, buf: Buffer, pos: int) -> int:
        """Where the reply at ``pos`` ends (after its final CRLF)."""
        eol = self._line(buf, pos)
        if buf.startswith(b"VALUE ", pos):
            return self._block(buf, pos, eol, b"VALUE ")
        if buf.startswith(_LISTING, pos):
            return self._block(buf, pos, eol, b"")
        if buf.startswith(b"VA ", pos):
            return self._data(buf, buf[pos:eol], 1, eol)
        if buf.startswith(_ERRORS, pos):
            self.error_replies += 1
        return eol + 2

    def _block(self, buf: Buffer, pos: int, eol: int, values: bytes) -> int:
        """A get reply (VALUE lines with data) or a listing, up to END;
        ``eol`` ends its first line."""
        while True:
            line = buf[pos:eol]
            if line == b"END":
                return eol + 2
            if values and line.startswith(values):
                pos = self._data(buf, line, 3, eol)
            elif not values and line.startswith(_LISTING):
                pos = eol + 2
            elif line.startswith(_ERRORS):
                self.error_replies += 1
                return eol + 2
            else:
                raise ProtocolError(f"memcached sent {bytes(line[:60])!r} inside a "
                                    f"{'get reply' if values else 'listing'}")
            eol = self._line(buf, pos)

    def _data(self, buf: Buffer, line: Buffer, word: int, eol: int) -> int:
        """A header line announcing data (size in word ``word``): where the
        data and its CRLF end."""
        words = line.split(b" ")
        if len(words) <= word or (word == 3 and len(words) > 5):
            raise ProtocolError(f"malformed memcached line: {bytes(line[:60])!r}")
        size = whole_number(words[word], "memcached data size", shown=line)
        if size > self.max_reply:
            raise ProtocolError(f"memcached data of {size} bytes is over the limit")
        end = eol + 2 + size
        if len(buf) < end + 2:
            raise Incomplete(end + 2)
        if buf[end:end + 2] != b"\r\n":
            raise ProtocolError("memcached data not followed by CRLF")
        return end + 2
