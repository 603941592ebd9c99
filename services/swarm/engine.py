"""One swarm worker: a readiness loop over its share of the connections.

Why this shape: the swarm must outrun the fastest server it measures and
hold ten thousand idle connections, so it cannot afford a thread (or even a
coroutine) per client.  Each worker process owns an epoll set of
non-blocking sockets and a heap of timers, and does everything from one
loop: non-blocking connects (a bounded number in progress, spread by the
ramp), the sends the pattern asks for, replies, scripted actions, the end.
What was sent and what came back is kept by book.py (no sockets there).

The instrument must not dominate the measurement, so the work per reply is
small and constant.  Each epoll turn reads the clock once: every reply the
turn reads had arrived by then, and every request it writes leaves within
the turn (a turn is at most MAX_EVENTS events, so that error is bounded and
the same on both ends of a latency).  A connection on the *fast path* (open,
nothing waiting to be written, line protocol, no scripted action in flight,
replies not traced one by one) is read straight into one preallocated
buffer, its replies are counted as newlines, timed by its Ledger, and, in
ping-pong, refilled with prebuilt request bytes in one send.  Past the
timeline's first pairs, the swarm's own code allocates nothing per reply.
Even so, CPython spends about as much per reply as the servers it measures;
so, where the library is built (the app image), ping-pong's steady state
runs in C (fastpath.c): the loop below hands such a connection to it and
takes it back whenever anything but "every request in flight answered,
refill" happens, and the C loop leaves the rest of the events to Python.
Everything else (connects, EPOLLOUT, errors, scripted actions, msg-level
traces) takes the general path, and so does every other protocol: its
client codec (wire.py) counts the replies, and tells when the handshake is
done, when the server refuses the session (a failed connection, kind
"refused-by-server"), when it breaks the protocol (that connection ends,
kind "other") and when it announced its close.

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
from collections import deque
from time import monotonic
from typing import Any

from ioproto import ProtocolViolation
from iorun import Trace

from swarm import fastpath
from ioschema import ERROR_KINDS

from swarm.book import Ledger, Tally
from swarm.conn import (CLOSED, CONNECTING, OPEN, REFUSED_BY_SERVER, RETRYING, Conn, Plan, errno_name,
                        error_kind)
from swarm.patterns import UNLIMITED, Action, Pattern, Storm
from swarm.wire import CodecReader, LineReader, Refused

BUFSIZE = 1 << 16  # one receive buffer per worker, reused for every read
MAX_EVENTS = 128  # events per epoll turn: bounds how stale the turn's clock gets
# Open-loop sends stop queueing bytes once this much waits for a peer that
# does not read; they are owed (counted, with their intended times kept in
# the ledger) and written once the socket drains, so memory stays bounded.
OUT_CAP = 1 << 20
PRECOMPUTED = 16  # request batches up to this many are prebuilt bytes
REPLY_PREVIEW = 2000  # characters of an action's reply kept in the results (a STATS fits)

IN = select.EPOLLIN
IN_EVENTS = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
OUT = select.EPOLLOUT

# timer kinds
T_START, T_TIMEOUT, T_RETRY, T_SEND, T_ACTION, T_WARM, T_END, T_HANDSHAKE = range(8)


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
        self.fast: dict[int, Conn] = {}  # fd -> open connection on the fast path
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
        self.sent_measured = 0
        self.tally = Tally(plan.timeline_max, plan.records_max)
        self.storm_left: dict[int, int] = {}
        self.live = 0  # clients not yet over
        self.active_live = 0
        self.active_count_done = 0
        self.notified = False
        self.first_connected: dict[int, float] = {}  # client -> end of its first connect
        self.warnings: list[str] = []
        self.ports_warned = False
        self.cpu_warm: tuple[float, float] | None = None  # this worker's CPU at the warm-up's end
        self.ended = plan.t0
        self._wake_r = -1
        self.buf = bytearray(BUFSIZE)
        self.view = memoryview(self.buf)
        lib = fastpath.load() if plan.fast_path else None
        # the steady state of ping-pong in C, when the library is here (fastpath.py)
        self.native = fastpath.FastLoop(lib, self.ep.fileno(), MAX_EVENTS, BUFSIZE) if lib else None

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
        # The loop makes no reference cycles worth collecting; the cyclic GC
        # would only walk the connections over and over.  The process ends
        # after the run.
        gc.disable()
        clock = monotonic
        now = clock()
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
        self._push(plan.warm_end, T_WARM)
        self._push(plan.t_end, T_END)
        self._start_due(now)

        fast_get = self.fast.get
        timers = self.timers
        poll = self.ep.poll
        buf = self.buf
        count = buf.count
        event = self._event
        replies = self._replies
        lost = self._lost
        broke = self._broke
        warm_end = self.warm_end
        t_end = self.t_end
        native = self.native
        while self.stop_reason is None:
            if native is not None:
                # the C loop turns until it leaves something for Python (or a timer is due)
                ready = native.turn(timers[0][0] if timers else -1.0, warm_end, t_end)
                now = native.now
            else:
                if timers:
                    timeout = timers[0][0] - clock()
                    if timeout < 0:
                        timeout = 0
                else:
                    timeout = -1
                ready = poll(timeout, MAX_EVENTS)
                now = clock()
            if now >= t_end:
                # The run is over.  What arrived now may well be the server's
                # answer to another worker closing at the deadline: not counted.
                self._stop("duration")
                break
            measure = now >= warm_end
            for fd, ev in ready:
                c = fast_get(fd)
                if c is None or ev != IN:
                    event(fd, ev, now)
                    continue
                # -- the fast path: one read, count, then time and refill ---
                try:
                    n = c.recv_into(buf)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    broke(c, exc.errno, now)
                    continue
                if not n:
                    lost(c, "eof", "the server closed the connection", now)
                    continue
                c.bytes_in += n
                k = count(b"\n", 0, n)
                if k:
                    replies(c, k, now, measure)
            if native is not None:
                for fd, _ in ready:  # back to C, each connection that can go
                    c = fast_get(fd)
                    if c is not None and fd not in native.owned and self._simple(c):
                        native.put(c)
            if timers and timers[0][0] <= now:
                self._timers(now)
        return self._finish()

    def _replies(self, c: Conn, k: int, now: float, measure: bool) -> None:
        """``k`` replies read on the fast path: the ledger times them; in
        ping-pong it books as many new requests, which leave in one send."""
        if c.refill and c.left >= k:
            m = c.ledger.replied(k, now, measure, True)
            if m != k:
                c.unexpected += k - m  # more lines than requests: not our protocol
                if not m:
                    return
            c.left -= m
            self._write(c, c.msgs[m] if m <= PRECOMPUTED else c.msg * m, now)
            return
        m = c.ledger.replied(k, now, measure)
        if m != k:
            c.unexpected += k - m
        self._answered(c, m, now)

    @staticmethod
    def _simple(c: Conn) -> bool:
        """Can the C loop carry this fast-path connection: ping-pong, one
        batch in flight, refilled whole by each reply batch, nothing else pending?"""
        lg = c.ledger
        return c.refill and c.ready and not lg.later and not lg.actions and lg.step == 0.0 and 0 < lg.n < len(c.msgs)

    def _from_native(self, c: Conn, code: int, arg: int, now: float) -> None:
        """What the C loop began and left to Python (fastpath.c's leftovers)."""
        if code == fastpath.LOST:
            if arg:
                self._broke(c, arg, now)
            else:
                self._lost(c, "eof", "the server closed the connection", now)
        elif code == fastpath.REPLIED:
            self._replies(c, arg, now, now >= self.warm_end)
        elif code == fastpath.SHORT:  # the refill was booked; its write fell short
            data = c.msgs[c.ledger.n]
            if arg & fastpath.FAILED:
                c.extra_out -= len(data)  # it never left
                self._broke(c, arg & ~fastpath.FAILED, now)
            else:
                self._keep(c, data, arg)

    def _timers(self, now: float) -> None:
        timers = self.timers
        while timers and timers[0][0] <= now and self.stop_reason is None:
            due, _, kind, obj, gen = heapq.heappop(timers)
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
            elif kind == T_HANDSHAKE:
                if obj.state == OPEN and not obj.ready and obj.gen == gen:
                    self._lost(obj, "timeout", "no answer to the handshake", now)
            elif kind == T_RETRY:
                if obj.state == RETRYING and obj.gen == gen and not self.stopping:
                    self._attempt(obj, now)
            elif kind == T_ACTION:
                self._fire_action(obj, now)
            elif kind == T_WARM:
                usage = resource.getrusage(resource.RUSAGE_SELF)
                self.cpu_warm = (usage.ru_utime, usage.ru_stime)
            elif kind == T_END:
                self._stop("duration")

    def _event(self, fd: int, ev: int, now: float) -> None:
        """Everything but a fast-path read: connects, EPOLLOUT, errors, the
        slow path, the signal wake-up."""
        c = self.conns.get(fd)
        if c is None:
            self._drain_wakeup()
            return
        if self.native is not None:
            self.native.take(c)
            if ev >> 32:
                self._from_native(c, ev >> 32, ev & 0xFFFFFFFF, now)
                return
        if c.state == OPEN:
            if ev & IN_EVENTS:
                self._read(c, now)
            if ev & OUT and c.state == OPEN:
                self._writable(c, now)
        elif c.state == CONNECTING:
            self._connect_done(c, now)

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

    def _settle(self, c: Conn) -> None:
        """Put an open connection on the fast path, or take it off, and
        watch EPOLLOUT exactly while something waits to be written."""
        if c.state != OPEN:
            return
        waiting = bool(c.out or c.owed)
        if waiting or c.slow or c.codec is not None:
            if self.native is not None:
                self.native.take(c)
            self.fast.pop(c.fd, None)
        else:
            self.fast[c.fd] = c
        self.ep.modify(c.fd, IN_EVENTS | OUT if waiting else IN_EVENTS)

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
        c = self._make_conn(client, now)
        self.unfinished.add(c)
        self.by_client[client] = c
        self._attempt(c, now)

    def _make_conn(self, client: int, now: float) -> Conn:
        plan = self.plan
        active = client <= plan.active
        pattern = self.pattern if active else self.hold
        msg = plan.message(client)
        depth = min(PRECOMPUTED, getattr(pattern, "depth", 1))
        msgs = [msg * n for n in range(depth + 1)]
        ledger = Ledger(self.tally, plan.timeline_per_conn if pattern.sends else 0)
        c = Conn(client, active, pattern, msg, msgs, pattern.budget(plan.count), now,
                 now + plan.connect_timeout, ledger)
        if plan.codec is not None:
            c.codec = plan.codec()  # keep=False: it counts replies, keeps no text
            c.reader = CodecReader(c.codec)
        if self.trace_msgs:  # every reply is traced: line by line from the start
            self._go_slow(c)
        return c

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
        c.tcp_end = now
        host, port = sock.getsockname()[:2]
        c.name = f"{host}:{port}"
        c.recv_into = sock.recv_into
        c.send = sock.send
        self._tcp_connected(c, now)

    def _tcp_connected(self, c: Conn, now: float) -> None:
        """Write the handshake, if any, and become ready, at once or once
        the codec says so (_decode)."""
        self.trace.conn("connect", c.name, client=c.client, attempts=c.attempts,
                        connect_us=int((now - c.attempt_t) * 1e6))
        self._settle(c)
        codec = c.codec
        if codec is not None:
            hello = codec.handshake()
            if hello:
                c.extra_out += len(hello)
                self._write(c, hello, now)
        if codec is None or codec.ready:
            self._ready(c, now)
        elif c.state == OPEN:
            # the handshake gets a connect timeout of its own
            self._push(now + self.plan.connect_timeout, T_HANDSHAKE, c, c.gen)
        self._start_due(now)

    def _ready(self, c: Conn, now: float) -> None:
        """The connection is usable (TCP connect, then the handshake if the
        protocol has one): connected, for the figures and the pattern."""
        if c.state != OPEN:
            return
        c.ready = True
        c.connect_end = now
        self.tally.connect.record(int((now - c.attempt_t) * 1e6))
        self.first_connected.setdefault(c.client, now)
        if c.tcp_end != now:
            assert c.tcp_end is not None
            handshake_us = int((now - c.tcp_end) * 1e6)
            self.tally.handshake.record(handshake_us)
            self.trace.conn("ready", c.name, client=c.client, handshake_us=handshake_us)
        c.pattern.opened(self, c, now)

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

    # -- reading (the general path) -------------------------------------------
    def _read(self, c: Conn, now: float) -> None:
        try:
            n = c.recv_into(self.buf)
        except BlockingIOError:
            return
        except OSError as exc:
            self._broke(c, exc.errno, now)
            return
        if not n:
            detail = "the server closed the connection"
            if c.codec is not None:
                # EOF may complete a reply (an HTTP body read to the close)
                self._decode(c, b"", now)
                if c.codec.pending:
                    detail += f" in the middle of a reply ({c.codec.pending} bytes of it)"
            self._lost(c, "eof", detail, now)
            return
        c.bytes_in += n
        data = self.view[:n].tobytes()
        if c.codec is not None:
            self._decode(c, data, now)
        elif c.slow:
            self._read_texts(c, data, now)
        else:
            k = data.count(b"\n")
            if k:
                m = c.ledger.replied(k, now, now >= self.warm_end)
                c.unexpected += k - m
                self._answered(c, m, now)

    def _decode(self, c: Conn, data: bytes, now: float) -> None:
        """Bytes (b"": EOF) of a connection with a codec: the handshake,
        then replies, counted (or read as texts on the slow path)."""
        codec = c.codec
        assert codec is not None and c.reader is not None
        try:
            if c.slow:
                self._read_texts(c, data, now)
                k = 0
            else:
                k = c.reader.count(data)
        except Refused as exc:
            self._lost(c, REFUSED_BY_SERVER, f"the server refused the session: {exc}", now)
            return
        except ProtocolViolation as exc:  # ioclient.ProtocolError included
            self._lost(c, "other", f"{codec.protocol} protocol error: {exc}", now)
            return
        if not c.ready:
            if codec.ready:
                self._ready(c, now)
            return
        if not k:
            if codec.closing:
                self._closing(c, now)
            return
        if c.refill and c.left >= k and not codec.closing and not c.out and not c.owed:
            # ping-pong, as on the line protocol's fast path: time the
            # replies, book as many new requests, and send them in one write
            m = c.ledger.replied(k, now, now >= self.warm_end, True)
            c.unexpected += k - m
            if m:
                c.left -= m
                self._write(c, c.msgs[m] if m <= PRECOMPUTED else c.msg * m, now)
            return
        m = c.ledger.replied(k, now, now >= self.warm_end)
        c.unexpected += k - m
        if codec.closing:
            self._closing(c, now)
        else:
            self._answered(c, m, now)

    def _closing(self, c: Conn, now: float) -> None:
        """The server said it closes after this reply: nothing more will be
        answered, so stop here (a spent budget ends as usual)."""
        if c.state != OPEN:
            return
        if c.left == 0 and not c.owed and not c.ledger.inflight and not c.ledger.actions:
            self._close(c, c.pattern.done_reason, now)
        else:
            self._lost(c, "eof", "the server announced that it closes the connection", now)

    def _read_texts(self, c: Conn, data: bytes, now: float) -> None:
        """Reply by reply: an action's reply text is kept, msg-level traces
        show every reply.  Counting stays exactly as on the fast path.  A
        codec's errors are the caller's (_decode) to handle."""
        assert c.reader is not None
        if c.codec is not None:
            texts = c.reader.texts(data)
        else:
            try:
                texts = c.reader.texts(data)
            except ProtocolViolation as exc:
                self._lost(c, "other", str(exc), now)
                return
        ledger = c.ledger
        matched = 0
        for text in texts:
            if ledger.action_next():
                sent = ledger.actions.popleft()
                self._action_outcome(sent.action, "reply", now, text)
                continue
            sent_t = ledger.t if ledger.n else (ledger.later[0].t if ledger.later else None)
            m = ledger.replied(1, now, now >= self.warm_end)
            c.unexpected += 1 - m
            matched += m
            if self.trace_msgs:
                latency = None if sent_t is None else int((now - sent_t) * 1e6)
                self.trace.msg("reply", c.name, text, client=c.client, latency_us=latency)
        if not ledger.actions and not self.trace_msgs:
            c.slow = False  # back to counting replies, not reading them
            if c.codec is None:
                c.reader = None  # the line protocol counts newlines on the fast path
            else:
                c.codec.keep = False
            self._settle(c)
        if texts:
            if c.codec is not None and c.codec.closing:
                self._closing(c, now)
            else:
                self._answered(c, matched, now)

    def _go_slow(self, c: Conn) -> None:
        if not c.slow:
            c.slow = True
            if c.codec is not None:
                c.codec.keep = True  # replies from here on come with their texts
            elif c.reader is None:
                c.reader = LineReader()
            self._settle(c)

    def _answered(self, c: Conn, k: int, now: float) -> None:
        """After ``k`` pattern replies: close when the budget is spent and
        everything is answered, otherwise let the pattern go on."""
        if c.left == 0 and not c.owed and not c.ledger.inflight:
            self._close(c, c.pattern.done_reason, now)
        elif k:
            c.pattern.answered(self, c, k, now)

    # -- writing --------------------------------------------------------------
    def send_batch(self, c: Conn, n: int, t: float, step: float) -> int:
        """Send ``n`` pattern requests (fewer if the budget is short), the
        j-th intended at ``t + j*step``; returns how many were sent."""
        left = c.left
        if n > left:
            n = left
        if n <= 0 or c.state != OPEN:
            return 0
        c.left = left - n
        c.ledger.sent_batch(t, n, step)
        if t >= self.warm_end:
            self.sent_measured += n
        if c.out or c.owed:
            if len(c.out) < OUT_CAP and not c.owed:
                c.out += c.msg * n
            else:
                c.owed += n
        else:
            self._write(c, c.msgs[n] if n < len(c.msgs) else c.msg * n, t)
        return n

    def _write(self, c: Conn, data: bytes, now: float) -> None:
        if c.out or c.owed:
            # behind what already waits, so that the wire order stays the
            # order of the ledger and replies match requests
            if c.owed:
                c.out += c.msg * c.owed
                c.owed = 0
            c.out += data
            return
        try:
            sent = c.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            c.extra_out -= len(data)  # it never left
            self._broke(c, exc.errno, now)
            return
        if sent < len(data):
            self._keep(c, data, sent)

    def _keep(self, c: Conn, data: bytes, sent: int) -> None:
        """The socket took only ``sent`` bytes: keep the rest, watch EPOLLOUT."""
        c.out += memoryview(data)[sent:]
        self._settle(c)

    def _writable(self, c: Conn, now: float) -> None:
        out = c.out
        if out:
            try:
                sent = c.send(out)
            except BlockingIOError:
                return
            except OSError as exc:
                self._broke(c, exc.errno, now)
                return
            del out[:sent]
        if not out and c.owed:
            # requests the schedule owed while the peer was not reading
            n = min(c.owed, OUT_CAP // len(c.msg) + 1)
            c.owed -= n
            out += c.msg * n
        if not out:
            self._settle(c)

    # -- scripted actions -----------------------------------------------------
    def _fire_action(self, a: Action, now: float) -> None:
        c = self.by_client.get(a.client)
        if c is None or c.state != OPEN or not c.ready:
            a.outcome = "not-connected"
            self.trace.event("action", None, client=a.client, send=a.send, outcome=a.outcome)
            return
        if self.native is not None:
            self.native.take(c)
        self._go_slow(c)
        c.ledger.sent_action(a)
        a.sent_t = now
        a.conn = c.name
        self.trace.event("action", c.name, client=a.client, send=a.send, outcome="sent")
        line = a.line if c.codec is None else c.codec.request(a.send)
        c.extra_out += len(line)
        self._write(c, line, now)

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
        if c.ready:
            self.trace.event("error", c.name, client=c.client, kind=kind, detail=detail)
        else:
            self.trace.event("error", c.name, client=c.client, kind=kind, detail=detail, phase="handshake")
        self._close(c, kind, now)

    def _broke(self, c: Conn, err: int | None, now: float) -> None:
        """A read or write failed with ``err``: the connection is lost."""
        self._lost(c, error_kind(err), f"{errno_name(err)}: {os.strerror(err or 0)}", now)

    def _close(self, c: Conn, reason: str, now: float) -> None:
        if c.state != OPEN:
            return
        if self.native is not None:
            self.native.take(c)
        for sent in c.ledger.actions:
            # an action still waiting when the connection ends: its outcome
            # is how it ended ("pending" if we closed it)
            self._action_outcome(sent.action, reason if reason in ERROR_KINDS else "pending", now)
        c.ledger.actions.clear()
        codec = c.codec
        if codec is not None and c.ready and not c.out and reason not in ERROR_KINDS:
            goodbye = getattr(codec, "close", None)  # postgres: Terminate, so the backend ends quietly
            if goodbye is not None:
                data = goodbye()
                try:
                    c.extra_out += c.send(data)
                except OSError:
                    pass
        self.conns.pop(c.fd, None)
        self.fast.pop(c.fd, None)
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
        self.trace.conn("close", c.name, client=c.client, reason=reason, sent=c.ledger.sent,
                        replies=c.ledger.answered)
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
        """Hand a finished connection to the worker's totals and records."""
        self.unfinished.discard(c)
        self.tally.finished(c.record(), c.ledger, c.pattern.sends)

    def _finish(self) -> dict[str, Any]:
        """Close everything still open and report."""
        # The measured window ends here, with the loop: closing connections
        # and turning ledgers into records and timelines comes after it, and
        # a timeline of 200,000 pairs would otherwise add about 2 us to every
        # reply of a 5 s run.
        window = resource.getrusage(resource.RUSAGE_SELF)
        now = monotonic()
        self.stopping = True
        self.ended = now
        reason = self.stop_reason or "duration"
        for c in list(self.unfinished):
            if c.state == OPEN:
                self._close(c, reason if c.ready else "stopped-connecting", now)
            else:
                self._drop_socket(c)
                c.state = CLOSED
                c.close_t = now
                c.close_reason = "stopped-connecting"
                self._finalize(c)
        tally = self.tally
        if self.native is not None:
            self.native.merge_into(tally.latency)
            self.native.close()
        tally.totals["never_started"] = len(self.pending)
        tally.totals["replies_measured"] = tally.latency.total
        tally.totals["sent_measured"] = self.sent_measured
        for _due, _, kind, obj, _gen in self.timers:
            if kind == T_ACTION and obj.outcome == "pending" and obj.sent_t is None:
                obj.outcome = "not-run"
        self.ep.close()
        signal.set_wakeup_fd(-1)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        warm = self.cpu_warm or (window.ru_utime, window.ru_stime)
        clients_first = sorted(self.first_connected.values())
        return {
            "worker": self.plan.worker,
            "pid": os.getpid(),
            "clients": len(self.plan.clients),
            "started": self.plan.t0,
            "ended": now,
            "end_reason": reason,
            "latency": tally.latency.to_json(),
            "connect": tally.connect.to_json(),
            "handshake": tally.handshake.to_json(),
            "totals": tally.totals,
            "errors": tally.errors,
            "closed_by": tally.closed_by,
            "clients_connected": len(clients_first),
            "last_first_connect": clients_first[-1] if clients_first else None,
            "records": tally.records,
            "records_dropped": tally.records_dropped,
            "timeline": tally.timeline,
            "timeline_capped": tally.tl_capped,
            "actions": [a.to_json() for a in self.plan.actions],
            "cpu": {"user_s": usage.ru_utime, "sys_s": usage.ru_stime,
                    "measured_s": window.ru_utime - warm[0] + window.ru_stime - warm[1]},
            "warnings": self.warnings,
            "fast_path": "native" if self.native is not None else "python",
        }
