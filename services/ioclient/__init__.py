"""Client codecs: the swarm's side of every protocol it speaks, sans-I/O.

One interface for all (see base.py for the rules they share):

    codec = make("redis")                   # or RedisClient(), PostgresClient(user=...)
    sock.sendall(codec.handshake())         # b"" when the protocol has none
    sock.sendall(codec.request("PING"))     # one request from its text form
    n = codec.receive_data(sock.recv(...))  # replies completed (b"" = EOF)
    texts = codec.replies()                 # their texts, when codec.keep
    codec.ready                             # handshake done

Like ioproto, nothing here touches a socket, a clock or a thread, and only
the standard library is used (the containers have no PyPI).
"""

from __future__ import annotations

from typing import Any

from .base import ClientCodec, ProtocolError, Refused
from .http import HttpClient
from .line import LineClient
from .memcached import MemcachedClient
from .postgres import PostgresClient
from .redis import RedisClient

# One per ioschema.PROTOCOLS, in its order (a unit test holds them equal).
CODECS: dict[str, type[ClientCodec]] = {
    "line": LineClient,
    "http": HttpClient,
    "redis": RedisClient,
    "memcached": MemcachedClient,
    "postgres": PostgresClient,
}


def make(protocol: str, **options: Any) -> ClientCodec:
    """A new codec for ``protocol`` (one of CODECS), for one connection."""
    try:
        cls = CODECS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(CODECS)}") from None
    return cls(**options)


__all__ = [
    "CODECS", "ClientCodec", "HttpClient", "LineClient", "MemcachedClient",
    "PostgresClient", "ProtocolError", "RedisClient", "Refused", "make",
]
