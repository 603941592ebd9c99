"""A worker's connecting and reconnecting, and which of its clients still run.

Clients start on the ramp (``--ramp`` connections per second over the whole
swarm; all at once without it), at most ``--max-connecting`` connects in
progress per worker.  A connect is non-blocking: EPOLLOUT says how it went.
One that is refused, unreachable or silent is retried with a growing pause
until its ``--connect-timeout`` runs out; then the connection has failed,
and so has the client.  Once the TCP connect is done, a protocol with a
handshake (postgres) writes it and gets a timeout of its own; the
connection is *ready* (connected, for the figures and the pattern) when the
codec says so, at once without a handshake.

Storm reconnects each slot after each close until its count is spent.  The
``Roster`` knows which clients still run: when none is left the run is
over ("count" if every active client spent its budget, else "all-closed").
"""

from __future__ import annotations

import errno
import os
import socket
from collections import deque
from functools import partial
from typing import Any, Callable

from swarm.book import Ledger
from swarm.conn import CLOSED, CONNECTING, OPEN, RETRYING, Conn, Share, errno_name, error_kind
from swarm.owner import Owner
from swarm.patterns import UNLIMITED, Pattern, Storm
from swarm.transfer import PRECOMPUTED
from swarm.wire import CodecReader

PORTS_OUT = ("out of local ports (EADDRNOTAVAIL): connections closed by the swarm wait in "
             "TIME_WAIT; widen net.ipv4.ip_local_port_range or lower the churn")


class Roster:
    """Which of a worker's clients still run, and when that ends the run."""

    def __init__(self, share: Share) -> None:
        self.share = share
        self.sends = share.pattern.sends
        self.storm = isinstance(share.pattern, Storm)
        self.live = 0  # clients not yet over
        self.active_live = 0
        self.active_done = 0  # active clients over because their budget was spent
        self.storm_left: dict[int, int] = {}  # storm: connections each slot may still make
        self.notified = False

    def sending(self, client: int) -> bool:
        """Does this client run a pattern that sends (its own, or slow)?"""
        return client <= self.share.active and (self.sends or client <= self.share.slow_clients)

    def enlist(self, client: int) -> None:
        self.live += 1
        if self.sending(client):
            self.active_live += 1
        if self.storm:
            self.storm_left[client] = UNLIMITED if self.share.count is None else self.share.count

    def again(self, c: Conn) -> bool:
        """Storm: may this slot connect once more after ``c`` closed?"""
        if not (self.storm and c.active):
            return False
        left = self.storm_left[c.client]
        if left <= 1:
            return False
        self.storm_left[c.client] = left - 1
        return True

    def over(self, client: int, by_count: bool) -> str | None:
        """A client will not send again; the run's end reason if it was the last."""
        share = self.share
        self.live -= 1
        if self.sending(client):
            self.active_live -= 1
            self.active_done += by_count
            if self.active_live == 0 and share.count is not None and self.live > 0:
                # our active clients are done but we hold others: the parent
                # ends the run when every worker's active clients are done
                if share.notify is not None and not self.notified:
                    self.notified = True
                    share.notify()
        if self.live:
            return None
        everyone = self.active_done and self.active_done == share.active_clients
        return "count" if everyone else "all-closed"


class Connector:
    """Starting clients on the ramp, connect attempts and retries, the
    handshake, and what follows a close."""

    def __init__(self, worker: Owner, sockets: Callable[[int], Any]) -> None:
        self.w = worker
        self.share = worker.share
        self.sockets = sockets  # family -> a new stream socket
        self.hold = Pattern()
        self.roster = Roster(worker.share)
        self.pending: deque[tuple[float, int]] = deque()  # (when, client) not yet started
        self.start_armed = -1.0
        self.connecting = 0
        self.first_connected: dict[int, float] = {}  # client -> end of its first connect
        self.ports_warned = False

    @property
    def never_started(self) -> int:
        """Clients the ramp had not reached."""
        return len(self.pending)

    # -- starting -----------------------------------------------------------------------
    def enlist(self) -> None:
        """Every client of the share, queued on the ramp."""
        share = self.share
        for client in share.clients:
            self.pending.append((share.t0 + ((client - 1) / share.ramp if share.ramp else 0.0), client))
            self.roster.enlist(client)

    def start_due(self, now: float) -> None:
        """Start the clients whose time has come, within the connect window."""
        pending = self.pending
        while pending and self.connecting < self.share.max_connecting and not self.w.stopping:
            when, client = pending[0]
            if when > now:
                if self.start_armed != when:
                    self.start_armed = when
                    self.w.timers.at(when, self._ramp)
                return
            pending.popleft()
            self._new_conn(client, now)

    def _ramp(self, now: float) -> None:
        self.start_armed = -1.0
        self.start_due(now)

    def _new_conn(self, client: int, now: float) -> None:
        c = self._make_conn(client, now)
        self.w.table.unfinished.add(c)
        self.w.table.by_client[client] = c
        self._attempt(c, now)

    def _make_conn(self, client: int, now: float) -> Conn:
        share = self.share
        active = client <= share.active
        pattern = share.pattern if active else self.hold
        if active and client <= share.slow_clients and share.slow is not None:
            pattern = share.slow  # slow beside the others' pattern
        msg = share.message(client)
        depth = min(PRECOMPUTED, getattr(pattern, "depth", 1))
        msgs = [msg * n for n in range(depth + 1)]
        ledger = Ledger(self.w.tally, share.timeline_per_conn if pattern.sends else 0)
        c = Conn(client, active, pattern, msg, msgs, pattern.budget(share.count), now,
                 now + share.connect_timeout, ledger)
        if share.codec is not None:
            c.codec = share.codec()  # keep=False: it counts replies, keeps no text
            c.reader = CodecReader(c.codec)
        if self.w.trace.msgs:  # every reply is traced: line by line from the start
            self.w.io.go_slow(c)
        return c

    # -- attempts -----------------------------------------------------------------------
    def _attempt(self, c: Conn, now: float) -> None:
        c.gen += 1
        c.attempts += 1
        c.attempt_t = now
        try:
            sock = self.sockets(self.share.family)
        except OSError as exc:  # EMFILE, ENOBUFS: count it and retry within the window
            self._failed(c, error_kind(exc.errno), f"{errno_name(exc.errno)}: {exc.strerror}", now)
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(self.share.addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._failed(c, error_kind(err), f"{errno_name(err)}: {os.strerror(err)}", now)
            return
        c.sock = sock
        c.fd = sock.fileno()
        c.state = CONNECTING
        self.connecting += 1
        self.w.table.connecting(c)
        self.w.timers.at(c.deadline, partial(self._timed_out, c, c.gen))

    def _timed_out(self, c: Conn, gen: int, now: float) -> None:
        if c.state == CONNECTING and c.gen == gen:
            self._drop_socket(c)
            self._failed(c, "timeout", "no answer to the connect", now)

    def _retry(self, c: Conn, gen: int, now: float) -> None:
        if c.state == RETRYING and c.gen == gen and not self.w.stopping:
            self._attempt(c, now)

    def _drop_socket(self, c: Conn) -> None:
        """Forget a socket that never became a connection."""
        if c.state == CONNECTING:
            self.connecting -= 1
        if c.sock is not None:
            self.w.table.forget(c)
            c.sock.close()
            c.sock = None
        c.state = RETRYING

    def _failed(self, c: Conn, kind: str, detail: str, now: float) -> None:
        """An attempt failed: retry after a pause while the window lasts,
        else the connection (and its client) failed."""
        c.errors[kind] = c.errors.get(kind, 0) + 1
        if detail.startswith("EADDRNOTAVAIL") and not self.ports_warned:
            # every local port to this server is taken, most likely by our
            # own closed connections in TIME_WAIT (storm): say it once
            self.ports_warned = True
            self.w.warnings.append(PORTS_OUT)
            self.w.trace.event("warning", message=PORTS_OUT)
        backoff = min(0.05 * (1 << min(c.attempts - 1, 4)), 0.5)
        if now + backoff < c.deadline and not self.w.stopping:
            c.state = RETRYING
            self.w.timers.at(now + backoff, partial(self._retry, c, c.gen))
        else:
            c.state = CLOSED
            c.failed = True
            c.close_t = now
            c.close_reason = "connect-failed"
            self.w.trace.event("error", None, client=c.client, kind=kind, phase="connect",
                               attempts=c.attempts, detail=detail)
            self.w.finalize(c)
            self._over(c.client, False)
        self.start_due(now)

    # -- connected, then ready ------------------------------------------------------------
    def connected(self, c: Conn, now: float) -> None:
        """EPOLLOUT on a connecting socket: the connect's outcome."""
        sock = c.sock
        assert sock is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop_socket(c)
            self._failed(c, error_kind(err), f"{errno_name(err)}: {os.strerror(err)}", now)
            return
        self.connecting -= 1
        c.state = OPEN
        c.tcp_end = now
        host, port = sock.getsockname()[:2]
        c.name = f"{host}:{port}"
        c.recv_into = sock.recv_into
        c.send = sock.send
        self.w.trace.conn("connect", c.name, client=c.client, attempts=c.attempts,
                          connect_us=int((now - c.attempt_t) * 1e6))
        self.w.table.settle(c)
        self._handshake(c, now)
        self.start_due(now)

    def _handshake(self, c: Conn, now: float) -> None:
        """Write the handshake, if any, and become ready, at once or once
        the codec says so (Transfer._decode)."""
        codec = c.codec
        if codec is not None:
            hello = codec.handshake()
            if hello:
                c.extra_out += len(hello)
                self.w.io.write(c, hello, now)
        if codec is None or codec.ready:
            self.ready(c, now)
        elif c.state == OPEN:
            # the handshake gets a connect timeout of its own
            self.w.timers.at(now + self.share.connect_timeout, partial(self._handshake_timed_out, c, c.gen))

    def _handshake_timed_out(self, c: Conn, gen: int, now: float) -> None:
        if c.state == OPEN and not c.ready and c.gen == gen:
            self.w.lost(c, "timeout", "no answer to the handshake", now)

    def ready(self, c: Conn, now: float) -> None:
        """The connection is usable (TCP connect, then the handshake if the
        protocol has one): connected, for the figures and the pattern."""
        if c.state != OPEN:
            return
        c.ready = True
        c.connect_end = now
        tally = self.w.tally
        tally.connect.record(int((now - c.attempt_t) * 1e6))
        self.first_connected.setdefault(c.client, now)
        if c.tcp_end != now:
            assert c.tcp_end is not None
            handshake_us = int((now - c.tcp_end) * 1e6)
            tally.handshake.record(handshake_us)
            self.w.trace.conn("ready", c.name, client=c.client, handshake_us=handshake_us)
        c.pattern.opened(self.w, c, now)

    # -- after a close --------------------------------------------------------------------
    def closed(self, c: Conn, reason: str, now: float) -> None:
        """``c`` closed while the run goes on: storm connects its slot again,
        any other client is over."""
        if self.roster.again(c):
            self._new_conn(c.client, now)
        else:
            self._over(c.client, reason == c.pattern.done_reason)

    def _over(self, client: int, by_count: bool) -> None:
        if self.w.stopping:
            return
        reason = self.roster.over(client, by_count)
        if reason is not None:
            self.w.stop(reason)

    def stopped(self, c: Conn, now: float) -> None:
        """The run ended while ``c`` was connecting or waiting to retry."""
        self._drop_socket(c)
        c.state = CLOSED
        c.close_t = now
        c.close_reason = "stopped-connecting"
        self.w.finalize(c)
