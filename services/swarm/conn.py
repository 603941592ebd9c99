"""One client connection, and a worker's share of the swarm: a worker's data.

A ``Conn`` is one TCP connection of one client (storm makes many per
client): its socket's bound methods (looked up once, the fast path calls
them), its send budget, what waits to be written, and its Ledger
(book.py: what is in flight and what the replies took).  A ``Share`` is
one worker's share of the clients and every setting it runs them with,
built by the parent before fork().
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from swarm.book import Delta, Ledger, Pair
from swarm.patterns import Action, Pattern, PingPong
from swarm.wire import Codec, Reader

CONNECTING, OPEN, CLOSED, RETRYING = 1, 2, 3, 4
# The error kind of a session the server refused in the handshake (postgres
# "too many clients"): the TCP connect worked, the server said no.
REFUSED_BY_SERVER = "refused-by-server"


def error_kind(err: int | None) -> str:
    """Fold an errno into the few kinds the results count."""
    if err == errno.ECONNREFUSED:
        return "refused"
    if err in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "reset"
    if err == errno.ETIMEDOUT:
        return "timeout"
    if err in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN):
        return "unreachable"
    return "other"


def errno_name(err: int | None) -> str:
    return errno.errorcode.get(err or 0, str(err))


@dataclass
class Share:
    """One worker's share of the clients, and its settings; built by the
    parent before fork()."""

    worker: int
    clients: list[int]  # client numbers this worker runs, ascending
    active: int  # clients 1..active run the pattern, the others hold
    pattern: Pattern
    message: Callable[[int], bytes]  # client number -> one request's bytes
    addr: tuple[Any, ...]
    family: int
    t0: float  # monotonic start of the run, shared by all workers
    warm_end: float
    t_end: float
    count: int | None
    ramp: float | None  # connections per second, over the whole swarm
    connect_timeout: float
    max_connecting: int
    actions: list[Action] = field(default_factory=list)
    timeline_per_conn: int = 2000
    timeline_max: int = 200_000  # this worker's share
    records_max: int = 20_000  # this worker's share
    trace_level: str = "conn"
    notify: Callable[[], None] | None = None  # tell the parent: actives done
    # Makes one connection's client codec (wire.py); None: the line protocol
    # and its fast path.  ``message`` then returns codec-encoded requests.
    codec: Callable[[], Codec] | None = None
    fast_path: bool = True  # ping-pong's steady state in C, where the library is built (fastpath.py)
    slow_clients: int = 0  # clients 1..slow_clients run ``slow`` (patterns.Slow) instead of ``pattern``
    slow: Pattern | None = None

    @property
    def active_clients(self) -> int:
        """How many of this share's clients run the pattern."""
        return sum(1 for c in self.clients if c <= self.active)


class Conn:
    """One TCP connection of one client (storm makes many per client).

    Its socket is OPEN from the TCP connect on; it is *ready* (connected,
    for the patterns and the figures) once its protocol's handshake is
    done, at once when there is none."""

    __slots__ = (
        "client", "active", "pattern", "sock", "fd", "state", "name", "gen", "attempts",
        "deadline", "connect_start", "attempt_t", "tcp_end", "ready", "connect_end", "close_t",
        "close_reason",
        "failed", "msg", "msgs", "ledger", "out", "owed", "left", "bytes_in", "extra_out",
        "unexpected", "errors", "slow", "reader", "codec", "next_due", "refill", "recv_into",
        "send", "partial",
    )

    def __init__(self, client: int, active: bool, pattern: Pattern, msg: bytes, msgs: list[bytes],
                 left: int, now: float, deadline: float, ledger: Ledger) -> None:
        self.client = client
        self.active = active
        self.pattern = pattern
        self.sock: socket.socket | None = None
        self.fd = -1
        self.state = RETRYING
        self.name = ""
        self.gen = 0
        self.attempts = 0
        self.deadline = deadline
        self.connect_start = now
        self.attempt_t = now
        self.tcp_end: float | None = None  # the TCP connect completed
        self.ready = False  # the handshake is done (at the TCP connect when there is none)
        self.connect_end: float | None = None  # when it became ready
        self.close_t: float | None = None
        self.close_reason = ""
        self.failed = False
        self.msg = msg
        self.msgs = msgs  # msgs[n]: n requests as one bytes object, prebuilt
        self.ledger = ledger
        self.out = bytearray()  # written once the socket takes it
        self.owed = 0  # requests due but not yet in ``out`` (the peer does not read)
        self.left = left  # the send budget
        self.bytes_in = 0
        self.extra_out = 0  # bytes of scripted actions and the handshake
        self.unexpected = 0
        self.errors: dict[str, int] = {}
        self.slow = False  # replies read as texts (an action in flight, or traced)
        self.reader: Reader | None = None
        self.codec: Codec | None = None
        self.next_due = 0.0
        self.partial = b""  # the slow pattern: what is still to write of the request under way
        self.refill = isinstance(pattern, PingPong)  # each reply buys the next request
        # the socket's bound methods, looked up once: the hot path calls them
        self.recv_into: Callable[..., int] = _not_open
        self.send: Callable[[Any], int] = _not_open

    def apply(self, d: Delta, pairs: Iterable[Pair]) -> None:
        """What the C fast path did while it had this connection: its
        ledger's part (book.py), and the budget and bytes it used."""
        self.ledger.apply(d, pairs)
        self.left -= d.sent
        self.bytes_in += d.bytes_in

    @property
    def bytes_out(self) -> int:
        """Bytes written: every request sent or owed, less what never left."""
        return (self.ledger.sent * len(self.msg) + self.extra_out - len(self.out)
                - self.owed * len(self.msg))

    def record(self) -> dict[str, Any]:
        lg = self.ledger
        return {
            "client": self.client,
            "role": self.pattern.name,  # the pattern it ran: holders say "hold"
            "conn": self.name or None,
            "attempts": self.attempts,
            "connect_start": _r(self.connect_start),
            "connect_end": _r(self.connect_end),
            "tcp_connect_end": _r(self.tcp_end),
            "handshake_us": self.handshake_us(),
            "first_reply": _r(lg.first),
            "last_reply": _r(lg.last),
            "close_t": _r(self.close_t),
            "close": self.close_reason,
            "sent": lg.sent,
            "replies": lg.answered,
            "unanswered": lg.inflight,
            "bytes_sent": self.bytes_out,
            "bytes_received": self.bytes_in,
            "errors": dict(self.errors),
            "latency_mean_us": round(lg.lat_sum / lg.answered, 1) if lg.answered else None,
            "latency_max_us": lg.lat_max if lg.answered else None,
            # the server's error replies (redis -ERR, HTTP >= 400, ...); the
            # line protocol's fast path does not read replies: null
            "error_replies": None if self.codec is None else self.codec.error_replies,
            "unexpected": self.unexpected,  # into the totals, not the record
        }

    def handshake_us(self) -> int | None:
        """TCP connect to ready, for a protocol with a handshake (else None)."""
        if self.codec is None or self.connect_end is None or self.tcp_end is None \
                or self.connect_end == self.tcp_end:
            return None
        return int((self.connect_end - self.tcp_end) * 1e6)


def _r(t: float | None) -> float | None:
    return None if t is None else round(t, 6)


def _not_open(*_: Any) -> Any:
    raise OSError(errno.ENOTCONN, "not connected yet")
