"""How the swarm frames requests and counts replies: the protocols it speaks.

The worker needs two things of a protocol: the bytes of a request, and how
many complete replies the bytes just received finished.  Reply *texts* are
needed only on the slow path: a scripted action (its reply is kept) and
msg-level traces (every reply is shown).

The lab's line protocol needs no object on its fast path: a reply is one
newline, so the worker counts newlines in its receive buffer and never
looks at the text.  ``LineReader`` is its slow path.

Every other protocol (--protocol http, redis, memcached, postgres) is a
sans-I/O client codec from services/ioclient, one per connection, made
with ``keep=False`` so that it only counts.  The worker turns ``keep`` on
while the connection is on the slow path and off again when it leaves it;
``CodecReader`` is the same two methods over a codec.  What the worker
reads of a codec besides them (the ``Codec`` protocol below):

    handshake() -> bytes     written right after the TCP connect (b"": none)
    ready                    the handshake is done: only then is the
                             connection "connected" for the patterns
    closing                  the server announced that it closes after
                             its last reply (HTTP Connection: close,
                             postgres FATAL): nothing more will be answered
    pending                  bytes of a reply cut short at EOF
    error_replies            server error replies (redis -ERR, HTTP >= 400, ...)
    receive_data(b"")        EOF: replies that the close completes (an HTTP
                             body read to the close)

A reply that breaks the protocol raises ``ProtocolError`` (an
``ioproto.ProtocolViolation``, as the line reader's own), and a session
the server refuses during the handshake raises its subclass ``Refused``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Protocol

from ioclient import ProtocolError, Refused, make
from ioschema import PROTOCOLS  # "line" first: the default
from ioproto import LineClient

DEFAULT_MESSAGES = {
    "line": "client {i}",
    "http": "/client{i}",  # GET /client7: the lab's servers echo the path
    "redis": "PING",
    "memcached": "version",
    "postgres": "SELECT 1",
}

__all__ = ["CodecReader", "Codec", "DEFAULT_MESSAGES", "LineReader", "PROTOCOLS",
           "ProtocolError", "Refused", "codec_factory"]


class Codec(Protocol):
    keep: bool
    ready: bool
    closing: bool
    error_replies: int

    @property
    def protocol(self) -> str: ...

    @property
    def pending(self) -> int: ...

    def handshake(self) -> bytes: ...

    def request(self, text: str) -> bytes: ...

    def receive_data(self, data: bytes) -> int: ...

    def replies(self) -> list[bytes]: ...


def codec_factory(protocol: str, **options: Any) -> Callable[[], Codec] | None:
    """What makes one connection's codec; None for the line protocol (its
    fast path needs none)."""
    if protocol == "line":
        return None
    make(protocol, **options).handshake()  # bad protocols and options fail here, in the parent
    return functools.partial(make, protocol, keep=False, **options)


class Reader(Protocol):
    def count(self, data: bytes) -> int: ...

    def texts(self, data: bytes) -> list[bytes]: ...


class LineReader:
    """The line protocol's slow path: whole reply lines, in order.

    Made when a connection leaves the fast path (an action is sent, or
    every reply is traced).  Bytes of a reply that the fast path had
    already counted in part arrive here as a shorter line: still one reply,
    so the count stays exact; only pattern replies can be cut that way,
    since an action always starts on the slow path."""

    def __init__(self) -> None:
        self._client = LineClient()

    def count(self, data: bytes) -> int:
        return data.count(b"\n")

    def texts(self, data: bytes) -> list[bytes]:
        self._client.receive_data(data)
        return self._client.replies()  # ioproto.ProtocolViolation past the longest line


class CodecReader:
    """Any other protocol: the codec counts; the texts are there while the
    worker has set ``codec.keep`` (the slow path)."""

    __slots__ = ("codec", "count")

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.count: Callable[[bytes], int] = codec.receive_data  # the counting path: one call

    def texts(self, data: bytes) -> list[bytes]:
        self.codec.receive_data(data)
        return self.codec.replies()
