"""Holds: how many unfinished requests a server keeps before a new client waits.

classify's first probe (lab/observe), and the one that needs nothing of a
server but that it answers a request: no keep-alive, no slow command.

    python3 -m swarm.holds --target HOST:PORT --protocol http [--steps 1,2,4,8,16,32]

Each step holds K connections, each with the first half of a request (an
HTTP head without its blank line, a line without its newline, a cut-short
postgres startup message), sent in two parts a moment apart (whoever reads
them wakes twice: the lab tells readers from timers that way).  A server that gives each connection a process
or a thread parks one in a read for each; a pool spends a worker on each,
up to its size; an event loop spends nothing, it only buffers the bytes.
Then one complete request goes out on a fresh connection: answered (any
byte back, a banner included) means the server still had someone free.

K steps up (1, 2, 4, ... bounded by --steps); at the first K left
unanswered the bound lies between it and the K before, and a bisection
finds the smallest K that is never answered: the bound N.  Answered at every
K means no bound within the probe's reach.  With --idle, a last step holds
N connections that each finished one whole request and stay open (keep-
alive): a pool that parks idle connections in a poller answers the fresh
request then; one that keeps a worker on each does not.

Every phase is a JSON line on stdout with CLOCK_MONOTONIC (`t`), shared by
every container of a host, so the lab lines up its own readings of the
server's process table with them.  The load is bounded: at most max(steps)
+ 1 connections at once, each step at most a few seconds, and every socket
is closed at the end of its step.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import struct
import sys
import threading
from dataclasses import asdict, dataclass, field
from time import monotonic
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: import the packages from the folder above
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from ioclient import make
from ioschema import DEFAULT_PORT, PROTOCOLS

from swarm.wire import DEFAULT_MESSAGES

SETTLE_S = 0.25  # after connecting, and after sending the halves: the server's turn to fork, spawn, read
ANSWER_S = 1.5  # how long a fresh request may take and still count as answered
SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # PostgreSQL's SSLRequest: length 8, the magic code
REST_S = 1.0  # before trying a waiting step again
BANNER_S = 0.3  # how long a server that speaks first has, after the connect, to say so
STEPS = (1, 2, 4, 8, 16, 32)
Emit = Callable[[dict[str, Any]], None]


@dataclass
class Step:
    """One K: what was held, and whether a fresh request got through."""

    k: int
    mode: str  # unfinished | idle (each held connection finished one request first)
    held: int = 0  # connected and sent their half (idle: were answered)
    refused: int = 0  # could not connect, or were closed before the fresh request
    answered: bool = False
    answer_s: float | None = None
    fresh_refused: bool = False  # the fresh connection itself failed (not merely unanswered)
    again: bool = False  # this K tried a second time, after a rest (the first try's fresh request waited)
    t_start: float = 0.0  # the step began: nothing of it connected yet
    t_sent: float = 0.0  # the first part of each half (idle: the whole requests) began to go out
    t_sent2: float = 0.0  # the rest of each half began to go out (unfinished only)
    t_held: float = 0.0  # the halves were sent (idle: the last reply came) and the server had SETTLE_S
    t_fresh: float = 0.0  # the fresh request went out
    t_end: float = 0.0  # every socket of the step closed


@dataclass
class Holds:
    """The whole probe, as the lab reads it (the last line on stdout)."""

    target: str
    protocol: str
    steps: list[Step] = field(default_factory=list)
    bound: int | None = None  # smallest K never answered; None: answered at every K tried
    reach: int = 0  # the largest K tried
    speaks_first: bool = False  # a banner arrived before any request was sent
    closes_after_reply: bool | None = None  # the fresh connection was closed right after its reply
    idle_parked: bool | None = None  # --idle: N idle keep-alive connections left room for a fresh one
    error: str | None = None  # no step could be judged: the server refused, or never answered, a lone request
    first_reply: str = ""  # how the server answered the lone request (its first bytes)


def whole_request(protocol: str) -> bytes:
    """A complete request any server of ``protocol`` answers at once, whoever wrote it."""
    if protocol == "postgres":  # an SSLRequest: answered with N or S by a server or a pooler alike,
        return SSL_REQUEST      # with no database or backend behind it
    codec = make(protocol)
    whole = codec.handshake() + codec.request(DEFAULT_MESSAGES[protocol].format(i=0))
    if protocol == "line":  # CRLF: what every line protocol takes (beanstalkd, SMTP, FTP insist on it)
        return whole.rstrip(b"\n") + b"\r\n"
    return whole


class Prober:
    """Connections to one target, in the protocol it speaks."""

    def __init__(self, host: str, port: int, protocol: str, emit: Emit) -> None:
        self.addr, self.protocol, self.emit = (host, port), protocol, emit
        self.whole = whole_request(protocol)
        # Half a request, never a whole one whatever the framing (the first
        # half of the HTTP head, of the line, of the SSLRequest), sent in two parts.
        self.half = self.whole[: max(2, len(self.whole) // 2)]
        self.parts = (self.half[: len(self.half) // 2], self.half[len(self.half) // 2:])

    def connect(self) -> socket.socket | None:
        try:
            return socket.create_connection(self.addr, timeout=3)
        except OSError:
            return None

    def answered(self, sock: socket.socket, within: float) -> float | None:
        """Seconds until the first byte came back on ``sock``; None if none did
        in time (``within`` 0: only what is there already)."""
        start = monotonic()
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            while True:
                left = max(0.0, start + within - monotonic())
                if sel.select(left):
                    try:
                        return monotonic() - start if sock.recv(65536, socket.MSG_PEEK) else None
                    except OSError:
                        return None
                if left <= 0:
                    return None

    def closed_after_reply(self, sock: socket.socket) -> bool:
        """Read the reply to its end: did the server close the connection
        right after it (within BANNER_S of the last byte)?"""
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            while sel.select(BANNER_S):
                try:
                    if not sock.recv(65536):
                        return True
                except OSError:
                    return True
        return False


def alive(sock: socket.socket) -> bool:
    """Still open from the server's side (nothing read is consumed)."""
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def hold(p: Prober, k: int, mode: str, o: Holds, again: bool = False) -> Step:
    """Hold ``k`` connections (unfinished requests, or idle after one whole
    one), then try a fresh request; every socket closed on return."""
    step, socks = Step(k, mode, again=again, t_start=monotonic()), []
    try:
        socks = [s for s in (p.connect() for _ in range(k)) if s is not None]
        step.refused = k - len(socks)
        threading_wait(SETTLE_S)
        step.t_sent = monotonic()
        for s in socks:
            if p.answered(s, 0) is not None:
                o.speaks_first = True
            send_hold(p, s, mode, 0)
        threading_wait(SETTLE_S)
        if mode == "unfinished":  # in two parts: a task that reads them wakes twice, a timer seldom does
            step.t_sent2 = monotonic()
            for s in socks:
                send_hold(p, s, mode, 1)
            threading_wait(SETTLE_S)
        step.t_held = monotonic()
        step.held = sum(1 for s in socks if alive(s))
        step.refused += len(socks) - step.held
        p.emit({"ev": "held", "k": k, "mode": mode, "held": step.held, "t": step.t_held})
        fresh(p, step, o)
    finally:
        close_all(socks)
        step.t_end = monotonic()
        threading_wait(SETTLE_S)  # the server lets go of what it held before the next step
    p.emit({"ev": "step", **asdict(step)})
    return step


def send_hold(p: Prober, sock: socket.socket, mode: str, part: int) -> None:
    try:
        if mode == "idle":
            sock.sendall(p.whole)
            p.answered(sock, ANSWER_S)
            sock.recv(65536)  # its reply, consumed: the connection is idle now
        else:
            sock.sendall(p.parts[part])
    except OSError:
        pass  # counted as refused: alive() will say it is gone


def fresh(p: Prober, step: Step, o: Holds) -> None:
    sock = p.connect()
    if sock is None:
        step.fresh_refused = True
        return
    try:
        step.t_fresh = monotonic()
        sock.sendall(p.whole)
        step.answer_s = p.answered(sock, ANSWER_S)
        step.answered = step.answer_s is not None
        if step.answered and not step.k:
            o.first_reply = sock.recv(80, socket.MSG_PEEK).decode("latin-1")
        if step.answered and o.closes_after_reply is None:
            o.closes_after_reply = p.closed_after_reply(sock)
    except OSError:
        pass
    finally:
        sock.close()


def threading_wait(seconds: float) -> None:
    """Pause this probe: nothing to wait for but the server's own pace."""
    threading.Event().wait(seconds)


def settled(p: Prober, k: int, o: Holds) -> Step:
    """A step, tried again after a rest when its fresh request waited: a
    server still letting go of the last step's connections can make one
    wait for nothing, and an answer is the stronger evidence (there was room)."""
    step = hold(p, k, "unfinished", o)
    if not step.answered and not step.fresh_refused and k:
        threading_wait(REST_S)
        second = hold(p, k, "unfinished", o, again=True)
        step = second if second.answered else step
    return step


def probe(p: Prober, steps: tuple[int, ...], idle: bool) -> Holds:
    """Step K up; at the first unanswered K, bisect to the bound."""
    host, port = p.addr
    o = Holds(f"{host}:{port}", p.protocol)
    alone = hold(p, 0, "unfinished", o)  # nothing held: the server must answer a lone request
    if not alone.answered:
        o.error = ("it refused the connection" if alone.fresh_refused else
                   f"it did not answer one complete {p.protocol} request within {ANSWER_S:g} s (is "
                   f"{p.protocol} what it speaks?)")
        return o
    o.error = mismatch(p.protocol, o.first_reply)
    if o.error:
        return o
    answered_k = 0
    for k in steps:
        o.reach = k
        step = settled(p, k, o)
        o.steps.append(step)
        if not step.answered:
            o.bound = bisect(p, answered_k, k, o)
            break
        answered_k = k
    if idle and o.bound:
        step = hold(p, o.bound, "idle", o)
        o.steps.append(step)
        o.idle_parked = step.answered
    return o


def bisect(p: Prober, low: int, high: int, o: Holds) -> int:
    """The smallest K in (low, high] left unanswered (``high`` was)."""
    while high - low > 1:
        mid = (low + high) // 2
        step = settled(p, mid, o)
        o.steps.append(step)
        low, high = (mid, high) if step.answered else (low, mid)
    return high


# How each protocol's reply begins (after a banner, for line: anything in lines).
REPLY_STARTS = {"http": ("HTTP/",), "redis": tuple("+-:$*_#,(!=%~>|"), "postgres": tuple("NSE")}


def mismatch(protocol: str, reply: str) -> str | None:
    """Why ``reply`` (a lone request's first bytes) is not in ``protocol``, or None."""
    said = repr(reply[:60])
    if protocol == "line":
        if reply.startswith("HTTP/"):
            return f"it answers in HTTP, not in lines: {said} (choose --protocol http)"
        if any(c < " " and c not in "\t\r\n" for c in reply):
            return f"it does not answer in lines: {said} (choose its --protocol)"
        return None
    starts = REPLY_STARTS.get(protocol)
    if starts and not reply.startswith(starts):
        return f"it does not answer in {protocol}: {said} (choose its --protocol)"
    return None


def steps_of(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--steps takes whole numbers separated by commas, not {text!r}")
    if not steps or steps[0] < 1 or steps[-1] > 256:
        raise argparse.ArgumentTypeError("--steps must be between 1 and 256")
    return steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="holds", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default=f"server:{DEFAULT_PORT}", help="HOST:PORT")
    ap.add_argument("--protocol", choices=PROTOCOLS, default="line")
    ap.add_argument("--steps", type=steps_of, default=STEPS, help="K to hold, e.g. 1,2,4,8,16,32")
    ap.add_argument("--idle", action="store_true", help="then hold N idle keep-alive connections")
    args = ap.parse_args(argv)
    host, _, port = args.target.rpartition(":")

    def emit(event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    found = probe(Prober(host.strip("[]"), int(port), args.protocol, emit), args.steps, args.idle)
    emit({"ev": "holds", **asdict(found)})
    return 2 if found.error else 0


if __name__ == "__main__":
    sys.exit(main())
