"""The client side of the line protocol, for the swarm: lines out, replies in.

    client = LineClient()
    out = client.request(b"client 3")     # bytes to write
    client.receive_data(data)             # b"" means the server closed
    for reply in client.replies(): ...    # complete reply lines, in order

The swarm counts and times replies; it never needs more of the protocol.
"""

from __future__ import annotations

from .connection import MAX_LINE


class ProtocolViolation(Exception):
    """The server sent a reply line longer than any request could cause."""


class LineClient:
    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.closed = False
        self._buf = bytearray()

    @staticmethod
    def request(line: bytes) -> bytes:
        if b"\n" in line:
            raise ValueError("a request is one line")
        return line + b"\n"

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buf += data
        else:
            self.closed = True

    def replies(self) -> list[bytes]:
        """Every complete reply received so far (each without its newline)."""
        buf = self._buf
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > self.max_line:
                raise ProtocolViolation(f"reply longer than {self.max_line} bytes")
            return []
        lines = bytes(buf[:end]).split(b"\n")
        del buf[: end + 1]
        return lines

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished reply (non-zero at close means a cut reply)."""
        return len(self._buf)
