"""One swarm worker: a readiness loop over its share of the connections.

Why this shape: the swarm must outrun the fastest server it measures and
hold ten thousand idle connections, so it cannot afford a thread (or even a
coroutine) per client.  Each worker process owns an epoll set of
non-blocking sockets and a heap of timers, and does everything from one
loop: non-blocking connects (a bounded number in progress, spread by the
ramp), sends the pattern asks for, replies, scripted actions, the deadline.

The hot path is kept small on purpose.  A reply is a newline: the worker
counts newlines in what recv() returned instead of splitting lines, and
times requests in *batches*: each connection keeps a FIFO of
``[t, n, step]`` entries meaning "n requests, the j-th sent (or intended) at
t + j*step".  A closed-loop refill of k requests is one entry, one send()
and one histogram update with weight k, whatever k is.  Only a connection
that has a scripted action in flight (whose reply text must be kept), or a
run traced at ``msg`` level, takes the slow path through the protocol
core's LineClient, one line at a time.

Replies match requests in order (the line protocol answers in order), so
the FIFO front is always the request a reply answers.

Everything a worker measured goes back to the parent as one JSON document
(see results.py for how the parent merges them).
"""

from __future__ import annotations

import errno
import gc
import heapq
import os
import resource
import select
import signal
import socket
import time
from collections import deque
from time import monotonic  # a global name: one lookup less per reply
from dataclasses import dataclass, field
from typing import Any, Callable

from ioproto import LineClient, ProtocolViolation
from iorun import Trace

from swarm.hist import Histogram
from swarm.patterns import UNLIMITED, Action, Pattern, Storm

CONNECTING, OPEN, CLOSED, RETRYING = 1, 2, 3, 4
BUFSIZE = 1 << 18
# Open-loop sends stop queueing bytes once this much waits for a peer that
# does not read; they are owed (counted, with their intended times kept in
# the FIFO) and written once the socket drains, so memory stays bounded.
OUT_CAP = 1 << 20
PRECOMPUTED = 16  # request batches up to this many are prebuilt bytes
REPLY_PREVIEW = 2000  # characters of an action's reply kept in the results (a STATS fits)
ERROR_KINDS = ("refused", "reset", "timeout", "eof", "unreachable", "other")

IN_EVENTS = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
OUT = select.EPOLLOUT

# timer kinds
T_START, T_TIMEOUT, T_RETRY, T_SEND, T_ACTION, T_END = range(6)


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
class Plan:
    """Everything one worker needs; built by the parent before fork()."""

    worker: int
    clients: list[int]  # client numbers this worker runs, ascending
    active: int  # clients 1..active run the pattern, the others hold
    pattern: Pattern
    message: Callable[[int], bytes]  # client number -> request bytes
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


class Conn:
    """One TCP connection of one client (storm makes many per client)."""

    __slots__ = (
        "client", "active", "pattern", "sock", "fd", "state", "name", "gen", "attempts",
        "deadline", "connect_start", "attempt_t", "connect_end", "first_reply",
        "last_reply", "close_t", "close_reason", "failed", "msg", "msgs", "fifo", "out",
        "owed", "left", "sent", "replies", "unexpected", "bytes_out", "bytes_in",
        "lat_sum", "lat_n", "lat_max", "errors", "tl", "tl_room", "slow", "proto",
        "inflight_actions", "next_due", "recv", "send",
    )

    def __init__(self, client: int, active: bool, pattern: Pattern, msg: bytes,
                 msgs: list[bytes], left: int, now: float, deadline: float, tl_room: int) -> None:
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
        self.connect_end: float | None = None
        self.first_reply: float | None = None
        self.last_reply: float | None = None
        self.close_t: float | None = None
        self.close_reason = ""
        self.failed = False
        self.msg = msg
        self.msgs = msgs
        self.fifo: deque[list[Any]] = deque()
        self.out = bytearray()
        self.owed = 0
        self.left = left
        self.sent = 0
        self.replies = 0
        self.unexpected = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.lat_sum = 0
        self.lat_n = 0
        self.lat_max = 0
        self.errors: dict[str, int] = {}
        self.tl: list[list[float]] = []
        self.tl_room = tl_room
        self.slow = False
        self.proto: LineClient | None = None
        self.inflight_actions = 0
        self.next_due = 0.0
        # the socket's bound methods, looked up once: the hot path calls them
        self.recv: Callable[[int], bytes] = _not_open
        self.send: Callable[[Any], int] = _not_open

    def record(self) -> dict[str, Any]:
        unanswered = sum(e[1] for e in self.fifo if len(e) == 3)
        return {
            "client": self.client,
            "role": self.pattern.name,  # the pattern it ran: holders say "hold"
            "conn": self.name or None,
            "attempts": self.attempts,
            "connect_start": _r(self.connect_start),
            "connect_end": _r(self.connect_end),
            "first_reply": _r(self.first_reply),
            "last_reply": _r(self.last_reply),
            "close_t": _r(self.close_t),
            "close": self.close_reason,
            "sent": self.sent,
            "replies": self.replies,
            "unanswered": unanswered + self.owed,
            "bytes_sent": self.bytes_out,
            "bytes_received": self.bytes_in,
            "errors": dict(self.errors),
            "latency_mean_us": round(self.lat_sum / self.lat_n, 1) if self.lat_n else None,
            "latency_max_us": self.lat_max if self.lat_n else None,
        }


def _r(t: float | None) -> float | None:
    return None if t is None else round(t, 6)


def _not_open(*_: Any) -> Any:
    raise OSError(errno.ENOTCONN, "not connected yet")


class Engine:
    def __init__(self, plan: Plan, trace: Trace) -> None:
        self.plan = plan
        self.trace = trace
        self.trace_msgs = trace.msgs
        self.pattern = plan.pattern
        self.hold = Pattern()
        self.storm = isinstance(plan.pattern, Storm)
        self.ep = select.epoll()
        self.conns: dict[int, Conn] = {}  # fd -> connection, connecting or open
        self.by_client: dict[int, Conn] = {}  # the current connection of a client
        self.unfinished: set[Conn] = set()  # connecting, retrying or open
        self.timers: list[tuple[float, int, int, Any, int]] = []
        self._seq = 0
        self.pending: deque[tuple[float, int]] = deque()  # (when, client) not yet started
        self.start_armed = -1.0
        self.connecting = 0
        self.stop_reason: str | None = None
        self.stopping = False
        self.warm_end = plan.warm_end
        self.t_end = plan.t_end
        self.replies_measured = 0  # hot counters live outside the totals dict
        self.sent_measured = 0
        self.latency = Histogram()  # pattern replies after warm-up, microseconds
        self.connect_hist = Histogram()  # successful connects, microseconds
        self.storm_left: dict[int, int] = {}
        self.live = 0  # clients not yet over
        self.active_live = 0
        self.active_count_done = 0
        self.notified = False
        self.tl_room = plan.timeline_max
        self.tl_capped = False
        self.timeline: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.records_dropped = 0
        self.first_connected: dict[int, float] = {}  # client -> end of its first connect
        self.totals = {
            "attempted": 0, "connected": 0, "failed": 0, "never_started": 0, "sent": 0,
            "replies": 0, "replies_measured": 0, "sent_measured": 0, "unanswered": 0,
            "unexpected": 0, "bytes_sent": 0, "bytes_received": 0,
        }
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.closed_by: dict[str, int] = {}
        self.warnings: list[str] = []
        self.ports_warned = False
        self.ended = plan.t0
        self._wake_r = -1

    # -- timers -------------------------------------------------------------
    def _push(self, due: float, kind: int, obj: Any = None, gen: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (due, self._seq, kind, obj, gen))

    def arm(self, conn: Conn, due: float) -> None:
        """Wake the pattern for ``conn`` at ``due`` (if conn is still open)."""
        if conn.state == OPEN:
            self._push(due, T_SEND, conn, conn.gen)

    # -- the loop -----------------------------------------------------------
    def run(self) -> dict[str, Any]:
        plan = self.plan
        self._signals()
        # The loop allocates many small lists (FIFO entries, timeline pairs)
        # and makes no reference cycles worth collecting; the cyclic GC
        # would only walk them over and over.  The process ends after the run.
        gc.disable()
        now = time.monotonic()
        rate = plan.ramp
        for client in plan.clients:
            when = plan.t0 + ((client - 1) / rate if rate else 0.0)
            self.pending.append((when, client))
            self.live += 1
            if client <= plan.active and self.pattern.sends:
                self.active_live += 1
            if self.storm:
                self.storm_left[client] = UNLIMITED if plan.count is None else plan.count
        for action in plan.actions:
            self._push(plan.t0 + action.t, T_ACTION, action)
        self._push(plan.t_end, T_END)
        self._start_due(now)

        conns = self.conns
        timers = self.timers
        poll = self.ep.poll
        monotonic = time.monotonic
        readable = self._readable
        while self.stop_reason is None:
            if timers:
                timeout = timers[0][0] - monotonic()
                if timeout < 0:
                    timeout = 0
            else:
                timeout = -1
            # Times are taken per event, not once per epoll turn: with a
            # hundred sockets ready, the last one is read a millisecond after
            # the first, and its replies are that much later.
            for fd, ev in poll(timeout):
                c = conns.get(fd)
                if c is None:
                    self._drain_wakeup()
                    continue
                if c.state == OPEN:
                    if ev & IN_EVENTS:
                        readable(c)
                    if ev & OUT and c.state == OPEN:
                        self._writable(c, monotonic())
                elif c.state == CONNECTING:
                    self._connect_done(c, monotonic())
            while timers and timers[0][0] <= monotonic() and self.stop_reason is None:
                due, _, kind, obj, gen = heapq.heappop(timers)
                now = monotonic()
                if kind == T_SEND:
                    if obj.state == OPEN and obj.gen == gen:
                        obj.pattern.due(self, obj, now)
                elif kind == T_START:
                    self.start_armed = -1.0
                    self._start_due(now)
                elif kind == T_TIMEOUT:
                    if obj.state == CONNECTING and obj.gen == gen:
                        self._drop_socket(obj)
                        self._connect_failed(obj, "timeout", "no answer to the connect", now)
                elif kind == T_RETRY:
                    if obj.state == RETRYING and obj.gen == gen and not self.stopping:
                        self._attempt(obj, now)
                elif kind == T_ACTION:
                    self._fire_action(obj, now)
                elif kind == T_END:
                    self._stop("duration")
        return self._finish()

    def _signals(self) -> None:
        """SIGTERM/SIGINT stop the run early ("signal"); SIGUSR1 is the parent
        saying every active client of the swarm is done ("count").  The
        wakeup fd makes a signal interrupt epoll even though Python retries
        the interrupted call after running the handler."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_r = r
        self.ep.register(r, select.EPOLLIN)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, lambda *_: self._stop("signal"))
        signal.signal(signal.SIGINT, lambda *_: self._stop("signal"))
        signal.signal(signal.SIGUSR1, lambda *_: self._stop("count"))
        # the parent blocks these around fork(); with our handlers in place a
        # pending SIGTERM now lands in the loop instead of killing us bare
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1})

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    # -- connecting ---------------------------------------------------------
    def _start_due(self, now: float) -> None:
        """Start the clients whose time has come, within the connect window."""
        pending = self.pending
        plan = self.plan
        while pending and self.connecting < plan.max_connecting and not self.stopping:
            when, client = pending[0]
            if when > now:
                if self.start_armed != when:
                    self.start_armed = when
                    self._push(when, T_START)
                return
            pending.popleft()
            self._new_conn(client, now)

    def _new_conn(self, client: int, now: float) -> None:
        plan = self.plan
        active = client <= plan.active
        pattern = self.pattern if active else self.hold
        msg = plan.message(client)
        depth = min(PRECOMPUTED, getattr(pattern, "depth", 1))
        msgs = [msg * n for n in range(depth + 1)]
        tl_room = plan.timeline_per_conn if pattern.sends else 0
        c = Conn(client, active, pattern, msg, msgs, pattern.budget(plan.count), now,
                 now + plan.connect_timeout, tl_room)
        if self.trace_msgs:  # every reply is traced: line by line from the start
            c.slow = True
            c.proto = LineClient()
        self.unfinished.add(c)
        self.by_client[client] = c
        self._attempt(c, now)

    def _attempt(self, c: Conn, now: float) -> None:
        c.gen += 1
        c.attempts += 1
        c.attempt_t = now
        try:
            sock = socket.socket(self.plan.family, socket.SOCK_STREAM)
        except OSError as exc:  # EMFILE, ENOBUFS: count it and retry within the window
            self._connect_failed(c, error_kind(exc.errno), f"{errno_name(exc.errno)}: {exc.strerror}", now)
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(self.plan.addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._connect_failed(c, error_kind(err), f"{errno_name(err)}: {os.strerror(err)}", now)
            return
        c.sock = sock
        c.fd = sock.fileno()
        c.state = CONNECTING
        self.connecting += 1
        self.conns[c.fd] = c
        self.ep.register(c.fd, OUT)
        self._push(c.deadline, T_TIMEOUT, c, c.gen)

    def _drop_socket(self, c: Conn) -> None:
        """Forget a socket that never became a connection."""
        if c.state == CONNECTING:
            self.connecting -= 1
        if c.sock is not None:
            self.conns.pop(c.fd, None)
            try:
                self.ep.unregister(c.fd)
            except OSError:
                pass
            c.sock.close()
            c.sock = None
        c.state = RETRYING

    def _connect_done(self, c: Conn, now: float) -> None:
        sock = c.sock
        assert sock is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop_socket(c)
            self._connect_failed(c, error_kind(err), f"{errno_name(err)}: {os.strerror(err)}", now)
            return
        self.connecting -= 1
        c.state = OPEN
        c.connect_end = now
        host, port = sock.getsockname()[:2]
        c.name = f"{host}:{port}"
        c.recv = sock.recv
        c.send = sock.send
        self.ep.modify(c.fd, IN_EVENTS)
        self.connect_hist.record(int((now - c.attempt_t) * 1e6))
        self.first_connected.setdefault(c.client, now)
        self.trace.conn("connect", c.name, client=c.client, attempts=c.attempts,
                        connect_us=int((now - c.attempt_t) * 1e6))
        c.pattern.opened(self, c, now)
        self._start_due(now)

    def _connect_failed(self, c: Conn, kind: str, detail: str, now: float) -> None:
        c.errors[kind] = c.errors.get(kind, 0) + 1
        if detail.startswith("EADDRNOTAVAIL") and not self.ports_warned:
            # every local port to this server is taken, most likely by our
            # own closed connections in TIME_WAIT (storm): say it once
            self.ports_warned = True
            text = ("out of local ports (EADDRNOTAVAIL): connections closed by the swarm wait in "
                    "TIME_WAIT; widen net.ipv4.ip_local_port_range or lower the churn")
            self.warnings.append(text)
            self.trace.event("warning", message=text)
        backoff = min(0.05 * (1 << min(c.attempts - 1, 4)), 0.5)
        if now + backoff < c.deadline and not self.stopping:
            c.state = RETRYING
            self._push(now + backoff, T_RETRY, c, c.gen)
        else:
            c.state = CLOSED
            c.failed = True
            c.close_t = now
            c.close_reason = "connect-failed"
            self.trace.event("error", None, client=c.client, kind=kind, phase="connect",
                             attempts=c.attempts, detail=detail)
            self._finalize(c)
            self._client_over(c.client, False)
        self._start_due(now)

    # -- I/O ------------------------------------------------------------------
    def _readable(self, c: Conn) -> None:
        try:
            data = c.recv(BUFSIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(c, error_kind(exc.errno), f"{errno_name(exc.errno)}: {exc.strerror}",
                       time.monotonic())
            return
        now = monotonic()
        if now >= self.t_end:
            # The run is over; this worker just has not noticed yet.  What
            # arrives now may well be the server's answer to another worker
            # having closed its connections at the deadline: not part of it.
            self._stop("duration")
            return
        if not data:
            self._lost(c, "eof", "the server closed the connection", now)
            return
        c.bytes_in += len(data)
        if c.slow:
            self._slow_readable(c, data, now)
            return
        k = data.count(b"\n")
        if k:
            self._answered(c, self._consume(c, k, now), now)

    def _consume(self, c: Conn, k: int, now: float) -> int:
        """Match ``k`` replies with the oldest pattern requests in flight;
        time them; return how many matched a request."""
        fifo = c.fifo
        measure = now >= self.warm_end
        hist = self.latency
        left = k
        while left and fifo:
            e = fifo[0]
            t, n, step = e[0], e[1], e[2]
            m = n if n <= left else left
            if step == 0.0:
                us = int((now - t) * 1e6)
                if measure:
                    hist.record(us, m)
                c.lat_sum += us * m
                if us > c.lat_max:
                    c.lat_max = us
            else:
                for j in range(m):
                    us = int((now - t - j * step) * 1e6)
                    if measure:
                        hist.record(us)
                    c.lat_sum += us
                    if us > c.lat_max:
                        c.lat_max = us
            if c.tl_room:
                self._timeline(c, t, step, m, now)
            if m == n:
                fifo.popleft()
            else:
                e[0] = t + m * step
                e[1] = n - m
            left -= m
        done = k - left
        c.lat_n += done
        if left:
            c.unexpected += left  # more lines than requests: not our protocol
        c.replies += done
        if measure:
            self.replies_measured += done
        if c.first_reply is None:
            c.first_reply = now
        c.last_reply = now
        return done

    def _timeline(self, c: Conn, t: float, step: float, m: int, now: float) -> None:
        room = min(c.tl_room, self.tl_room, m)
        if room < m:
            self.tl_capped = True
            if not room:
                c.tl_room = 0  # the worker's share is spent: stop asking
                return
        if step == 0.0:
            c.tl.extend([[t, now]] * room)
        else:
            c.tl.extend([[t + j * step, now] for j in range(room)])
        c.tl_room -= room
        self.tl_room -= room
        if not self.tl_room:
            self.tl_capped = True

    def _answered(self, c: Conn, k: int, now: float) -> None:
        """After ``k`` pattern replies: close when the budget is spent and
        everything is answered, otherwise let the pattern go on."""
        if c.left == 0 and not c.owed and c.sent == c.replies:
            self._close(c, c.pattern.done_reason, now)
        elif k:
            c.pattern.answered(self, c, k, now)

    def _slow_readable(self, c: Conn, data: bytes, now: float) -> None:
        """Line by line: an action's reply text is kept, msg-level traces
        show every reply.  Counting stays exactly as on the fast path."""
        proto = c.proto
        assert proto is not None
        proto.receive_data(data)
        try:
            lines = proto.replies()
        except ProtocolViolation as exc:
            self._lost(c, "other", str(exc), now)
            return
        fifo = c.fifo
        matched = 0
        for line in lines:
            if fifo and len(fifo[0]) == 4:
                entry = fifo.popleft()
                c.inflight_actions -= 1
                self._action_outcome(entry[3], "reply", now, line)
                continue
            sent_t = fifo[0][0] if fifo else None
            matched += self._consume(c, 1, now)
            if self.trace_msgs:
                latency = None if sent_t is None else int((now - sent_t) * 1e6)
                self.trace.msg("reply", c.name, line, client=c.client, latency_us=latency)
        if not c.inflight_actions and not self.trace_msgs:
            c.slow = False
            c.proto = None
        if lines:
            self._answered(c, matched, now)

    def send_batch(self, c: Conn, n: int, t: float, step: float) -> int:
        """Send ``n`` pattern requests (fewer if the budget is short), the
        j-th intended at ``t + j*step``; returns how many were sent."""
        left = c.left
        if n > left:
            n = left
        if n <= 0 or c.state != OPEN:
            return 0
        c.left = left - n
        c.sent += n
        if t >= self.warm_end:
            self.sent_measured += n
        fifo = c.fifo
        if step and fifo:
            last = fifo[-1]
            # the next slot of the same schedule: extend, so a stalled
            # server costs one FIFO entry, not one per intended request
            if len(last) == 3 and last[2] == step and abs(last[0] + last[1] * step - t) < 1e-9:
                last[1] += n
            else:
                fifo.append([t, n, step])
        else:
            fifo.append([t, n, step])
        if c.out or c.owed:
            if len(c.out) < OUT_CAP and not c.owed:
                c.out += c.msg * n
            else:
                c.owed += n
        else:
            self._write(c, c.msgs[n] if n < len(c.msgs) else c.msg * n)
        return n

    def _write(self, c: Conn, data: bytes) -> None:
        try:
            sent = c.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._lost(c, error_kind(exc.errno), f"{errno_name(exc.errno)}: {exc.strerror}",
                       time.monotonic())
            return
        c.bytes_out += sent
        if sent < len(data):
            c.out += memoryview(data)[sent:]
            self.ep.modify(c.fd, IN_EVENTS | OUT)

    def _writable(self, c: Conn, now: float) -> None:
        out = c.out
        if out:
            try:
                sent = c.send(out)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(c, error_kind(exc.errno), f"{errno_name(exc.errno)}: {exc.strerror}", now)
                return
            del out[:sent]
            c.bytes_out += sent
        if not out and c.owed:
            # requests the schedule owed while the peer was not reading
            n = min(c.owed, OUT_CAP // len(c.msg) + 1)
            c.owed -= n
            out += c.msg * n
        if not out:
            self.ep.modify(c.fd, IN_EVENTS)

    # -- scripted actions -----------------------------------------------------
    def _fire_action(self, a: Action, now: float) -> None:
        c = self.by_client.get(a.client)
        if c is None or c.state != OPEN:
            a.outcome = "not-connected"
            self.trace.event("action", None, client=a.client, send=a.send, outcome=a.outcome)
            return
        if not c.slow:
            c.slow = True
            c.proto = LineClient()
        c.fifo.append([now, 1, 0.0, a])
        c.inflight_actions += 1
        a.sent_t = now
        a.conn = c.name
        self.trace.event("action", c.name, client=a.client, send=a.send, outcome="sent")
        if c.out or c.owed:
            # Behind everything queued, owed requests included, so that the
            # wire order stays the FIFO order and replies match requests.
            if c.owed:
                c.out += c.msg * c.owed
                c.owed = 0
            c.out += a.line
        else:
            self._write(c, a.line)

    def _action_outcome(self, a: Action, outcome: str, now: float, reply: bytes | None = None) -> None:
        a.outcome = outcome
        a.done_t = now
        if reply is not None:
            a.reply = reply[:REPLY_PREVIEW].decode("utf-8", "replace")
        latency = round((now - a.sent_t) * 1000, 3) if a.sent_t is not None else None
        self.trace.event("action", a.conn, client=a.client, send=a.send, outcome=outcome,
                         reply=a.reply, latency_ms=latency)

    # -- endings --------------------------------------------------------------
    def _lost(self, c: Conn, kind: str, detail: str, now: float) -> None:
        """The connection ended without our asking (EOF, reset, ...)."""
        if c.state != OPEN:
            return
        c.errors[kind] = c.errors.get(kind, 0) + 1
        self.trace.event("error", c.name, client=c.client, kind=kind, detail=detail)
        self._close(c, kind, now)

    def _close(self, c: Conn, reason: str, now: float) -> None:
        if c.state != OPEN:
            return
        for entry in c.fifo:
            if len(entry) == 4:
                # an action still waiting when the connection ends: its
                # outcome is how it ended ("pending" if we closed it)
                outcome = reason if reason in ERROR_KINDS else "pending"
                self._action_outcome(entry[3], outcome, now)
        self.conns.pop(c.fd, None)
        try:
            self.ep.unregister(c.fd)
        except OSError:
            pass
        assert c.sock is not None
        c.sock.close()
        c.sock = None
        c.state = CLOSED
        c.close_t = now
        c.close_reason = reason
        self.trace.conn("close", c.name, client=c.client, reason=reason, sent=c.sent,
                        replies=c.replies)
        self._finalize(c)
        if self.stopping:
            return
        if self.storm and c.active:
            left = self.storm_left[c.client]
            if left > 1:
                self.storm_left[c.client] = left - 1
                self._new_conn(c.client, now)
                return
        self._client_over(c.client, reason == c.pattern.done_reason)

    def _client_over(self, client: int, by_count: bool) -> None:
        """A client will not send again: its last connection is over."""
        if self.stopping:
            return
        self.live -= 1
        if client <= self.plan.active and self.pattern.sends:
            self.active_live -= 1
            self.active_count_done += by_count
            if self.active_live == 0 and self.plan.count is not None and self.live > 0:
                # our active clients are done but we hold others: the parent
                # ends the run when every worker's active clients are done
                if self.plan.notify is not None and not self.notified:
                    self.notified = True
                    self.plan.notify()
        if self.live == 0:
            everyone = self.active_count_done and self.active_count_done == \
                sum(1 for c in self.plan.clients if c <= self.plan.active)
            self._stop("count" if everyone else "all-closed")

    def _finalize(self, c: Conn) -> None:
        """Add a finished connection to the worker's totals and records."""
        self.unfinished.discard(c)
        totals = self.totals
        totals["attempted"] += 1
        if c.connect_end is not None:
            totals["connected"] += 1
        if c.failed:
            totals["failed"] += 1
        totals["sent"] += c.sent
        totals["replies"] += c.replies
        totals["unexpected"] += c.unexpected
        totals["bytes_sent"] += c.bytes_out
        totals["bytes_received"] += c.bytes_in
        for kind, n in c.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        self.closed_by[c.close_reason] = self.closed_by.get(c.close_reason, 0) + 1
        unanswered = sum(e[1] for e in c.fifo if len(e) == 3) + c.owed
        totals["unanswered"] += unanswered
        keep = len(self.records) < self.plan.records_max
        if keep:
            self.records.append(c.record())
        else:
            self.records_dropped += 1
        # a connection's timeline goes with its record (storm makes many)
        if keep and c.pattern.sends and (c.tl or c.fifo):
            pairs: list[list[float | None]] = [[round(s, 6), round(r, 6)] for s, r in c.tl]
            # requests never answered show as [sent, null]: who waited, and since when
            room = min(c.tl_room, self.tl_room)
            for e in c.fifo:
                if len(e) != 3:
                    continue
                take = min(e[1], room)
                pairs.extend([round(e[0] + j * e[2], 6), None] for j in range(take))
                room -= take
                self.tl_room -= take
                if take < e[1]:
                    self.tl_capped = True
            if pairs:
                self.timeline.append({"client": c.client, "conn": c.name or None, "pairs": pairs})
        c.tl = []

    def _finish(self) -> dict[str, Any]:
        """Close everything still open and report."""
        now = time.monotonic()
        self.stopping = True
        self.ended = now
        reason = self.stop_reason or "duration"
        for c in list(self.unfinished):
            if c.state == OPEN:
                self._close(c, reason, now)
            else:
                self._drop_socket(c)
                c.state = CLOSED
                c.close_t = now
                c.close_reason = "stopped-connecting"
                self._finalize(c)
        self.totals["never_started"] = len(self.pending)
        self.totals["replies_measured"] = self.replies_measured
        self.totals["sent_measured"] = self.sent_measured
        for due, _, kind, obj, _gen in self.timers:
            if kind == T_ACTION and obj.outcome == "pending" and obj.sent_t is None:
                obj.outcome = "not-run"
        self.ep.close()
        signal.set_wakeup_fd(-1)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        clients_first = sorted(self.first_connected.values())
        return {
            "worker": self.plan.worker,
            "pid": os.getpid(),
            "clients": len(self.plan.clients),
            "started": self.plan.t0,
            "ended": now,
            "end_reason": reason,
            "latency": self.latency.to_json(),
            "connect": self.connect_hist.to_json(),
            "totals": self.totals,
            "errors": self.errors,
            "closed_by": self.closed_by,
            "clients_connected": len(clients_first),
            "last_first_connect": clients_first[-1] if clients_first else None,
            "records": self.records,
            "records_dropped": self.records_dropped,
            "timeline": self.timeline,
            "timeline_capped": self.tl_capped,
            "actions": [a.to_json() for a in self.plan.actions],
            "cpu": {"user_s": usage.ru_utime, "sys_s": usage.ru_stime},
            "warnings": self.warnings,
        }
