"""One worker of the client swarm: a small readiness loop over its share of the clients.

Why this shape: the swarm must outrun the fastest server it measures and
hold ten thousand idle connections, so it cannot afford a thread (or even a
coroutine) per client.  Each worker process owns an epoll set of
non-blocking sockets and a heap of timers, and does everything from one
loop: non-blocking connects (a bounded number in progress, spread by the
ramp), the sends the pattern asks for, replies, scripted actions, the end.

The instrument must not dominate the measurement, so the work per reply is
small and constant.  Each turn of the loop reads the clock once: every
reply the turn reads had arrived by then, and every request it writes
leaves within the turn (a turn is at most MAX_EVENTS events, so that error
is bounded and the same on both ends of a latency).  A connection on the
*fast path* (open, nothing waiting to be written, line protocol, no
scripted action in flight, replies not traced one by one) is read straight
into one preallocated buffer, its replies are counted as newlines and go
through the reply step (transfer.py).  Where the library is built (the app
image), ping-pong's steady state runs in C instead (fastpath.c): the loop
hands such a connection to it and takes it back whenever anything but
"every request in flight answered, refill" happens; the C loop leaves the
rest of the events to Python.  Everything else (connects, EPOLLOUT,
errors, scripted actions, msg-level traces, the other protocols) takes the
general path.

The parts, one module each:

    worker.py    this loop, and how a connection ends
    table.py     the table of connections: by descriptor, by client, fast or not
    owner.py     what the parts below may ask of the worker that owns them
    timers.py    what is due when: deadlines with callbacks
    connect.py   connecting and reconnecting: the ramp, retries, handshakes,
                 which clients are still running
    transfer.py  reading and writing: the reply step, refills,
                 back-pressure, the slow path, scripted actions
    book.py      bookkeeping: what is in flight, what each reply took
    fastpath.py  ping-pong's steady state in C, and the deltas it hands back
    report.py    the end-of-run report to the parent (WorkerReport)

The clock, the readiness poller and the socket factory are injected, so a
test drives a worker turn by turn (``start``, ``turn``, ``finish``) with a
fake clock, poller and sockets.  The C fast path needs the real epoll (it
is off with a fake poller); an injected clock it reads as well, so a test
can run both paths on the same bytes at the same times
(tests/unit/test_fastpath_parity.py).
"""

from __future__ import annotations

import math
import os
import resource
import select
import signal
import socket
from functools import partial
from time import monotonic
from typing import Any, Callable

from iorun import Trace
from ioschema import ERROR_KINDS

from swarm import fastpath
from swarm.book import Tally
from swarm.conn import CLOSED, CONNECTING, OPEN, Conn, Share, errno_name, error_kind
from swarm.connect import Connector
from swarm.report import WorkerReport
from swarm.table import IN, IN_EVENTS, OUT, Poller, Table
from swarm.timers import Timers
from swarm.transfer import BUFSIZE, Transfer

MAX_EVENTS = 128  # events per epoll turn: bounds how stale the turn's clock gets
INF = math.inf

class Worker:
    """One worker's loop over its share of the clients (see the module's docstring)."""

    def __init__(self, share: Share, trace: Trace, *, clock: Callable[[], float] = monotonic,
                 poller: Poller | None = None, sockets: Callable[[int], Any] | None = None) -> None:
        self.share = share
        self.trace = trace
        self.clock = clock
        self.poller: Poller = poller if poller is not None else select.epoll()
        self.warm_end = share.warm_end
        self.t_end = share.t_end
        self.timers = Timers()
        self.tally = Tally(share.timeline_max, share.records_max)
        self.warnings: list[str] = []
        self.stop_reason: str | None = None
        self.stopping = False  # the run is over: closing everything, nothing starts again
        self.cpu_warm: tuple[float, float] | None = None  # this worker's CPU at the warm-up's end
        self._wake_r = -1  # the signal wake-up pipe, once run() has set it
        # C waits in the real epoll itself; an injected clock it reads too (a test's, fastpath.c's seam)
        lib = fastpath.load() if share.fast_path and poller is None else None
        self.native = fastpath.FastLoop(lib, self.poller.fileno(), MAX_EVENTS, BUFSIZE,
                                        None if clock is monotonic else clock) if lib else None
        self.table = Table(self.poller, self.native)
        self.io = Transfer(self)
        self.connector = Connector(self, sockets or (lambda family: socket.socket(family, socket.SOCK_STREAM)))

    # -- the public face: the parent's, the patterns', the tests' -------------------
    def run(self) -> WorkerReport:
        """The whole run: signals, the start, turns until a stop, the report."""
        self._signals()
        self.start()
        self._turns(once=False)
        return self.finish()

    def start(self) -> None:
        """Queue every client on the ramp, arm the scripted actions, the
        warm-up's end and the deadline, and start the clients already due."""
        share = self.share
        self.connector.enlist()
        for action in share.actions:
            self.timers.at(share.t0 + action.t, partial(self.io.fire_action, action))
        self.timers.at(share.warm_end, self._warm_over)
        self.timers.at(share.t_end, self._deadline)
        self.connector.start_due(self.clock())

    def turn(self) -> None:
        """One turn: wait for readiness or the next timer, read and write
        what is ready, fire what is due."""
        self._turns(once=True)

    def stop(self, reason: str) -> None:
        """End the run at the next turn (the first reason given stands)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def send_batch(self, c: Conn, n: int, t: float, step: float) -> int:
        """For the patterns: send ``n`` requests, the j-th intended at
        ``t + j*step`` (transfer.Transfer.send_batch)."""
        return self.io.send_batch(c, n, t, step)

    def book_request(self, c: Conn, t: float) -> bytes:
        """For the slow pattern: book one request as sent at ``t`` without
        writing it; returns its bytes, for ``send_piece`` (b"": no budget)."""
        return self.io.book_request(c, t)

    def send_piece(self, c: Conn, data: bytes, now: float) -> None:
        """For the slow pattern: write a piece of a booked request."""
        self.io.send_piece(c, data, now)

    def arm(self, c: Conn, due: float) -> None:
        """For the patterns: wake ``c``'s pattern at ``due`` if that
        connection is still open then."""
        if c.state == OPEN:
            self.timers.at(due, partial(self._due, c, c.gen))

    def connection(self, client: int) -> Conn | None:
        """The client's current (or last) connection."""
        return self.table.by_client.get(client)

    def on_fast_path(self, c: Conn) -> bool:
        """Is ``c`` read on the fast path (counted, not parsed)?"""
        return self.table.fast.get(c.fd) is c

    @property
    def first_connects(self) -> dict[int, float]:
        """client -> when it first became ready."""
        return self.connector.first_connected

    # -- the loop's insides ---------------------------------------------------------
    def _turns(self, once: bool) -> None:
        """Turns until the run stops (or just one).  Per turn, not per reply,
        but a turn may carry a single reply: what it looks up, it looks up
        once for all turns."""
        if self.native is not None:
            self._native_turns(once)
            return
        clock, timers, poll = self.clock, self.timers, self.poller.poll
        t_end, warm_end = self.t_end, self.warm_end
        fast_get = self.table.fast.get
        read, event = self.io.read, self._event
        while self.stop_reason is None:
            wait = timers.earliest - clock()  # inf: no timer, epoll waits for ever (-1)
            ready = poll(-1 if wait == INF else wait if wait > 0 else 0, MAX_EVENTS)
            now = clock()
            if now >= t_end:
                self._deadline(now)
                return
            measure = now >= warm_end
            for fd, ev in ready:
                c = fast_get(fd)
                if c is None or ev != IN:
                    event(fd, ev, now)
                else:
                    read(c, now, measure)  # the fast path
            if timers.earliest <= now:
                self._fire_due(now)
            if once:
                return

    def _native_turns(self, once: bool) -> None:
        """As _turns, with the C loop waiting and doing the fast path's reads."""
        native = self.native
        assert native is not None
        timers, fast_get, simple = self.timers, self.table.fast.get, self.io.simple
        while self.stop_reason is None:
            left = native.turn(timers.next_due(), self.warm_end, self.t_end)
            now = native.now
            if now >= self.t_end:
                self._deadline(now)
                return
            measure = now >= self.warm_end
            for x in left:
                fd = x.fd
                c = fast_get(fd)
                if x.kind != fastpath.EVENT:
                    self._finish_native(fd, x, now, measure)
                elif c is None or x.events != IN:
                    self._event(fd, x.events, now)
                else:
                    self.io.read(c, now, measure)  # the fast path, but not C's case (another pattern)
            for x in left:  # back to C, each connection that can go
                c = fast_get(x.fd)
                if c is not None and x.fd not in native.owned and simple(c):
                    native.put(c)
            if timers.earliest <= now:
                self._fire_due(now)
            if once:
                return

    def _finish_native(self, fd: int, x: fastpath.Leftover, now: float, measure: bool) -> None:
        """What the C loop began on ``fd`` and left to Python."""
        c = self.table.by_fd[fd]
        assert self.native is not None
        self.native.take(c)
        if x.kind == fastpath.LOST:
            if x.err:
                self.broke(c, x.err, now)
            else:
                self.lost(c, "eof", "the server closed the connection", now)
        elif x.kind == fastpath.REPLIED:
            self.io.replied(c, x.n, now, measure)
        elif x.kind == fastpath.SHORT:  # the refill was booked; its write fell short
            data = c.msgs[c.ledger.n]
            if x.err:
                c.extra_out -= len(data)  # it never left
                self.broke(c, x.err, now)
            else:
                self.io.keep(c, data, x.n)

    def _event(self, fd: int, ev: int, now: float) -> None:
        """Everything but a fast-path read: connects, EPOLLOUT, errors, the
        general path, the signal wake-up."""
        c = self.table.by_fd.get(fd)
        if c is None:
            self._drain_wakeup()
            return
        if self.native is not None:
            self.native.take(c)
        if c.state == OPEN:
            if ev & IN_EVENTS:
                self.io.read(c, now, now >= self.warm_end)
            if ev & OUT and c.state == OPEN:
                self.io.writable(c, now)
        elif c.state == CONNECTING:
            self.connector.connected(c, now)

    def _fire_due(self, now: float) -> None:
        timers = self.timers
        while self.stop_reason is None:
            fire = timers.pop_due(now)
            if fire is None:
                return
            fire(now)

    def _due(self, c: Conn, gen: int, now: float) -> None:
        if c.state == OPEN and c.gen == gen:
            c.pattern.due(self, c, now)

    def _deadline(self, now: float) -> None:
        # The run is over.  What arrives at the deadline may well be the
        # server's answer to another worker closing then: not counted.
        self.stop("duration")

    def _warm_over(self, now: float) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_warm = (usage.ru_utime, usage.ru_stime)

    def _signals(self) -> None:
        """SIGTERM/SIGINT stop the run early ("signal"); SIGUSR1 is the parent
        saying every active client of the swarm is done ("count").  The
        wakeup fd makes a signal interrupt epoll even though Python retries
        the interrupted call after running the handler."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_r = r
        self.poller.register(r, select.EPOLLIN)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, lambda *_: self.stop("signal"))
        signal.signal(signal.SIGINT, lambda *_: self.stop("signal"))
        signal.signal(signal.SIGUSR1, lambda *_: self.stop("count"))
        # the parent blocks these around fork(); with our handlers in place a
        # pending SIGTERM now lands in the loop instead of killing us bare
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1})

    def _drain_wakeup(self) -> None:
        if self._wake_r < 0:
            return
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    # -- endings -----------------------------------------------------------------------
    def lost(self, c: Conn, kind: str, detail: str, now: float) -> None:
        """The connection ended without our asking (EOF, reset, ...)."""
        if c.state != OPEN:
            return
        c.errors[kind] = c.errors.get(kind, 0) + 1
        if c.ready:
            self.trace.event("error", c.name, client=c.client, kind=kind, detail=detail)
        else:
            self.trace.event("error", c.name, client=c.client, kind=kind, detail=detail, phase="handshake")
        self.close(c, kind, now)

    def broke(self, c: Conn, err: int | None, now: float) -> None:
        """A read or write failed with ``err``: the connection is lost."""
        self.lost(c, error_kind(err), f"{errno_name(err)}: {os.strerror(err or 0)}", now)

    def close(self, c: Conn, reason: str, now: float) -> None:
        """Close an open connection for ``reason`` and book it; then, unless
        the run is ending, the client reconnects (storm) or is over."""
        if c.state != OPEN:
            return
        if self.native is not None:
            self.native.take(c)
        for action in c.ledger.drop_actions():
            # an action still waiting when the connection ends: its outcome
            # is how it ended ("pending" if we closed it)
            self.io.action_outcome(action, reason if reason in ERROR_KINDS else "pending", now)
        if c.ready and not c.out and reason not in ERROR_KINDS:
            self.io.goodbye(c)
        self.table.forget(c)
        assert c.sock is not None
        c.sock.close()
        c.sock = None
        c.state = CLOSED
        c.close_t = now
        c.close_reason = reason
        self.trace.conn("close", c.name, client=c.client, reason=reason, sent=c.ledger.sent,
                        replies=c.ledger.answered)
        self.finalize(c)
        if not self.stopping:
            self.connector.closed(c, reason, now)

    def finalize(self, c: Conn) -> None:
        """Hand a finished connection to the worker's totals and records."""
        self.table.unfinished.discard(c)
        self.tally.finished(c.record(), c.ledger, c.pattern.sends)

    def finish(self) -> WorkerReport:
        """Close everything still open, and report."""
        # The measured window ends here, with the loop: closing connections
        # and turning ledgers into records and timelines comes after it, and
        # a timeline of 200,000 pairs would otherwise add about 2 us to every
        # reply of a 5 s run.
        window = resource.getrusage(resource.RUSAGE_SELF)
        now = self.clock()
        self.stopping = True
        reason = self.stop_reason or "duration"
        for c in list(self.table.unfinished):
            if c.state == OPEN:
                self.close(c, reason if c.ready else "stopped-connecting", now)
            else:
                self.connector.stopped(c, now)
        if self.native is not None:
            self.tally.latency.merge(self.native.histogram())
            self.native.close()
        for action in self.share.actions:
            if action.outcome == "pending" and action.sent_t is None:
                action.outcome = "not-run"  # its time never came
        self.poller.close()
        if self._wake_r >= 0:
            signal.set_wakeup_fd(-1)
        warm = self.cpu_warm or (window.ru_utime, window.ru_stime)
        return self._report(now, reason, window.ru_utime - warm[0] + window.ru_stime - warm[1])

    def _report(self, now: float, reason: str, measured_s: float) -> WorkerReport:
        share, tally = self.share, self.tally
        tally.totals["never_started"] = self.connector.never_started
        tally.totals["replies_measured"] = tally.latency.total
        tally.totals["sent_measured"] = self.io.sent_measured
        firsts = sorted(self.connector.first_connected.values())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return WorkerReport(
            worker=share.worker, pid=os.getpid(), clients=len(share.clients), started=share.t0, ended=now,
            end_reason=reason, latency=tally.latency.to_json(), connect=tally.connect.to_json(),
            handshake=tally.handshake.to_json(), totals=tally.totals, errors=tally.errors,
            closed_by=tally.closed_by, clients_connected=len(firsts),
            last_first_connect=firsts[-1] if firsts else None, records=tally.records,
            records_dropped=tally.records_dropped, timeline=tally.timeline, timeline_capped=tally.tl_capped,
            actions=[a.to_json() for a in share.actions],
            cpu={"user_s": usage.ru_utime, "sys_s": usage.ru_stime, "measured_s": measured_s},
            warnings=self.warnings, fast_path="native" if self.native is not None else "python")
