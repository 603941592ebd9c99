"""The lab's own line protocol, client side (the servers' side is ioproto).

Rules:

- A request is one line of text: "SLEEP 100" is sent as b"SLEEP 100\\n".
- A reply is one line; its text is the line without its newline (and
  without a CR before it).  Replies answer requests in order.
- A reply whose text starts with "ERR " is the server refusing a request:
  it is counted in ``error_replies``.
- A line longer than ``max_reply`` without a newline is a ProtocolError.

The hot path counts newlines in C (bytes.count); it splits lines only
when the texts are kept.
"""

from __future__ import annotations

from .base import Buffer, ClientCodec, ProtocolError, encode_text

MAX_LINE = 1 << 20  # as ioproto: no request can cause a longer reply


class LineClient(ClientCodec):
    protocol = "line"

    def __init__(self, *, keep: bool = True, max_reply: int = MAX_LINE) -> None:
        super().__init__(keep=keep, max_reply=max_reply)

    def request(self, text: str) -> bytes:
        return encode_text(text, "line") + b"\n"

    def _parse(self, buf: Buffer) -> tuple[int, int]:
        end = buf.rfind(b"\n")
        if len(buf) - end - 1 > self.max_reply:  # the line still without its newline
            raise ProtocolError(f"a line reply longer than {self.max_reply} bytes")
        if end < 0:
            return 0, 0
        n = buf.count(b"\n", 0, end + 1)
        # Look at the lines one by one only when something needs it: texts
        # are kept, one of them may be too long, or one may be an ERR.
        if self.keep or end > self.max_reply or b"ERR " in buf:
            self._lines(bytes(buf[:end]).split(b"\n"))
        return n, end + 1

    def _lines(self, lines: list[bytes]) -> None:
        for i, line in enumerate(lines):
            if len(line) > self.max_reply:
                raise ProtocolError(f"a line reply longer than {self.max_reply} bytes")
            if line.endswith(b"\r"):
                lines[i] = line = line[:-1]
            if line.startswith(b"ERR "):
                self.error_replies += 1
        if self.keep:
            self._texts += lines
