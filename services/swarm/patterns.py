"""What the clients do: the load patterns and the scripted actions.

A pattern decides *what to send when*; the worker (worker.py) owns the
sockets, the clock and the bookkeeping.  Each pattern reacts to three
moments of a connection's life, and asks the worker to send through
``Worker.send_batch(conn, n, t, step)`` (``n`` requests at once, the j-th
intended for ``t + j * step``) and to wake it through ``Worker.arm``:

    opened(conn, now)        the connection is established
    answered(conn, k, now)   k pattern replies arrived (conn still open)
    due(conn, now)           a timer the pattern armed has fired

interval   open loop on a fixed schedule per client (the classic experiment):
           a request every ``interval``; late replies do not delay sends.
pingpong   closed loop: ``depth`` requests in flight, each reply buys the
           next request (depth 1 is strict ping-pong).
rate       open loop at an aggregate rate, spread evenly over the active
           connections with staggered phases.  Latency is measured from the
           *intended* send time, so a stalled server (or a stalled swarm)
           shows up in the percentiles instead of silently slowing the
           schedule (coordinated omission, corrected as wrk2 does).
hold       connect and say nothing: slow clients, held descriptors.
storm      one request per connection, then close and connect again:
           connection churn across ``clients`` concurrent slots.
slow       each request in pieces, ``piece`` bytes every ``pace`` (a
           slowloris client), the next once the reply came: a server that
           gives a connection a worker while it reads holds that worker
           for the whole request.  ``--slow-clients K`` makes clients 1..K
           slow beside the others' pattern.

Scripted actions (``--at``/``--plan``) are separate from the pattern: at a
chosen time a chosen client writes a chosen line, and its reply (or the
error that follows) is recorded on its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from ioschema import PATTERNS

NAMES = PATTERNS
UNLIMITED = 1 << 62  # "no --count": a send budget that never runs out


class Line(Protocol):
    """What a pattern reads and keeps on a connection (swarm.conn.Conn)."""

    client: int  # 1..clients
    left: int  # requests it may still send
    next_due: float  # an open loop's next intended send
    partial: bytes  # the slow pattern's request still to write


class Sender(Protocol):
    """What a pattern asks of the worker that runs it (swarm.worker.Worker)."""

    def send_batch(self, conn: Line, n: int, t: float, step: float) -> int: ...
    def book_request(self, conn: Line, t: float) -> bytes: ...
    def send_piece(self, conn: Line, data: bytes, now: float) -> None: ...
    def arm(self, conn: Line, due: float) -> None: ...


class Pattern:
    """The base pattern sends nothing: that is ``hold``."""

    name = "hold"
    sends = False  # whether clients running it send anything
    done_reason = "count"  # close reason when a connection's budget is spent

    def opened(self, w: Sender, conn: Line, now: float) -> None:
        pass

    def answered(self, w: Sender, conn: Line, k: int, now: float) -> None:
        pass

    def due(self, w: Sender, conn: Line, now: float) -> None:
        pass

    def budget(self, count: int | None) -> int:
        """Requests one connection may send."""
        return UNLIMITED if count is None else count


class Hold(Pattern):
    pass


class Scheduled(Pattern):
    """Open loop: request j of a connection is due at ``first + j * period``,
    whatever the replies do.  Sends that fall due together (the swarm was
    busy) leave in one write but keep their own intended times."""

    sends = True

    def __init__(self, period: float) -> None:
        self.period = period

    def phase(self, conn: Line) -> float:
        return 0.0

    def opened(self, w: Sender, conn: Line, now: float) -> None:
        conn.next_due = now + self.phase(conn)
        self.due(w, conn, now)

    def due(self, w: Sender, conn: Line, now: float) -> None:
        first = conn.next_due
        if now < first:
            w.arm(conn, first)
            return
        n = int((now - first) / self.period) + 1
        sent = w.send_batch(conn, n, first, self.period)
        conn.next_due = first + sent * self.period
        if conn.left > 0:
            w.arm(conn, conn.next_due)  # ignored if the write closed conn


class Interval(Scheduled):
    name = "interval"


class Rate(Scheduled):
    """``rate`` requests/s in all, over ``active`` connections: each sends
    every active/rate seconds, client k offset by k/rate so that the
    aggregate stream is even rather than bursty."""

    name = "rate"

    def __init__(self, rate: float, active: int) -> None:
        super().__init__(active / rate)
        self.rate = rate

    def phase(self, conn: Line) -> float:
        return ((conn.client - 1) / self.rate) % self.period


class PingPong(Pattern):
    name = "pingpong"
    sends = True

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def opened(self, w: Sender, conn: Line, now: float) -> None:
        w.send_batch(conn, self.depth, now, 0.0)

    def answered(self, w: Sender, conn: Line, k: int, now: float) -> None:
        w.send_batch(conn, k, now, 0.0)  # one write refills the pipeline


class Storm(Pattern):
    """Each connection carries one request; ``--count`` is the number of
    connections per slot.  The worker reconnects the slot after a close (connect.py)."""

    name = "storm"
    sends = True
    done_reason = "done"

    def opened(self, w: Sender, conn: Line, now: float) -> None:
        w.send_batch(conn, 1, now, 0.0)

    def budget(self, count: int | None) -> int:
        return 1


class Slow(Pattern):
    """One request at a time, written ``piece`` bytes every ``pace`` seconds;
    its latency runs from its first piece to its reply.  The bytes still to
    write of the request under way are ``conn.partial``."""

    name = "slow"
    sends = True

    def __init__(self, pace: float, piece: int) -> None:
        self.pace = pace
        self.piece = piece

    def opened(self, w: Sender, conn: Line, now: float) -> None:
        self._begin(w, conn, now)

    def answered(self, w: Sender, conn: Line, k: int, now: float) -> None:
        if conn.left > 0 and not conn.partial:
            self._begin(w, conn, now)

    def due(self, w: Sender, conn: Line, now: float) -> None:
        part = conn.partial
        if not part:
            return
        conn.partial = part[self.piece:]
        w.send_piece(conn, part[:self.piece], now)
        if conn.partial:
            w.arm(conn, now + self.pace)

    def _begin(self, w: Sender, conn: Line, now: float) -> None:
        conn.partial = w.book_request(conn, now)
        self.due(w, conn, now)


def make(name: str, *, interval_ms: float, depth: int, rate: float | None, active: int,
         pace_ms: float = 100.0, piece: int = 1) -> Pattern:
    if name == "interval":
        return Interval(interval_ms / 1000.0)
    if name == "pingpong":
        return PingPong(depth)
    if name == "rate":
        assert rate is not None
        return Rate(rate, max(1, active))
    if name == "storm":
        return Storm()
    if name == "slow":
        return Slow(pace_ms / 1000.0, piece)
    return Hold()


def message(template: str, client: int, size: int | None) -> bytes:
    """Client ``client``'s request line, newline included, padded with dots
    to ``size`` bytes when asked (the benchmark's 64-byte lines)."""
    line = template.format(i=client).encode()
    if b"\n" in line:
        raise ValueError("--message must be one line")
    if size is not None:
        if len(line) + 1 > size:
            raise ValueError(f"--size {size} is shorter than the message {line!r} and its newline")
        line += b"." * (size - 1 - len(line))
    return line + b"\n"


# -- scripted actions --------------------------------------------------------

@dataclass
class Action:
    """One scripted request and, once the run is over, what came of it."""

    t: float  # seconds after the run started
    client: int
    send: str
    # outcome: reply, eof, reset, timeout, other, not-connected, pending
    outcome: str = "pending"
    sent_t: float | None = None  # monotonic
    done_t: float | None = None
    conn: str | None = None
    reply: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> bytes:
        return self.send.encode() + b"\n"

    def to_json(self) -> dict[str, Any]:
        latency = None
        if self.sent_t is not None and self.done_t is not None:
            latency = round((self.done_t - self.sent_t) * 1000, 3)
        return {
            "t": self.t, "client": self.client, "send": self.send, "conn": self.conn,
            "sent_t": _r(self.sent_t), "done_t": _r(self.done_t), "outcome": self.outcome,
            "reply": self.reply, "latency_ms": latency, **self.extra,
        }


def _r(t: float | None) -> float | None:
    return None if t is None else round(t, 6)


def parse_at(text: str) -> Action:
    """``T:CLIENT:SEND``, e.g. ``2:1:CRASH`` or ``0.5:3:SLEEP 200``."""
    parts = text.split(":", 2)
    if len(parts) != 3:
        raise ValueError(f"--at {text!r}: expected T:CLIENT:SEND, e.g. 2:1:CRASH")
    t, client, send = parts
    try:
        return _action(float(t), int(client), send)
    except ValueError as exc:
        raise ValueError(f"--at {text!r}: {exc}") from None


def parse_plan(text: str) -> list[Action]:
    """A JSON list of {"t", "client", "send"}, given inline or as a file."""
    source = text
    if not text.lstrip().startswith("["):
        if not os.path.isfile(text):
            raise ValueError(f"--plan {text!r}: neither a JSON list nor a file")
        with open(text, encoding="utf-8") as f:
            source = f.read()
    try:
        items = json.loads(source)
    except ValueError as exc:
        raise ValueError(f"--plan: not JSON: {exc}") from None
    if not isinstance(items, list):
        raise ValueError("--plan: expected a JSON list of {\"t\", \"client\", \"send\"}")
    actions = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"t", "client", "send"} or \
                not {"t", "client", "send"} <= set(item):
            raise ValueError(f"--plan item {n}: expected exactly the keys t, client, send: {item!r}")
        try:
            actions.append(_action(float(item["t"]), int(item["client"]), str(item["send"])))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--plan item {n}: {exc}") from None
    return actions


def _action(t: float, client: int, send: str) -> Action:
    if not t >= 0:
        raise ValueError("the time must be >= 0 seconds")
    if client < 1:
        raise ValueError("clients are numbered from 1")
    if "\n" in send or "\r" in send:
        raise ValueError("the request must be one line")
    return Action(t, client, send)
