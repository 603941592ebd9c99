"""What the readiness loops share, apart from the readiness call itself.

busypoll, select, poll, epoll and epoll-edge all keep many connections in one
thread.  None of them may wait inside recv(), send() or time.sleep(): each
socket is non-blocking, and the loop only ever tries what the kernel can do at
once.  What that takes per connection is the same in all five, and lives here:

- ``Connection``: a non-blocking adapter around the protocol core.  The loop
  tells it "readable" (``on_read``: one recv, then answer what the core can),
  "writable" (``on_write``: one send from the outbox) or "broken"
  (``on_error``).  It says what it wants next through ``reading`` and
  ``writing``, and when it is ``done`` (plain attributes, kept current;
  ``changed`` says one of them may have moved since the loop cleared it,
  which the common echo never does); the loop then stops watching it and
  calls ``close``.  The socket is closed only there, so that epoll forgets a
  descriptor before the number can be given to the next client.
- ``Timers``: a deadline heap.  SLEEP becomes a deadline, not a wait; so does
  the pause in accepting after EMFILE.  The loop asks it how long it may wait
  (``timeout``) and lets it fire what is due (``run``).

Rules the adapter keeps:

- One request is outstanding at a time (ServerConnection's rule): while a
  SLEEP is pending the connection reads nothing more, so later pipelined
  requests wait in the kernel, and replies leave in order.
- Back-pressure: replies wait in the outbox until send() takes them.  Once
  more than OUTBOX_LIMIT bytes wait, the connection stops answering and stops
  reading, so a client that sends without reading fills its own socket
  buffers, not our memory.
- BLOCK is still a real blocking call (iorun.perform sleeps in this thread):
  the whole loop stops with it.  That is what the lab shows.
- Trace events and close reasons are those of iorun/stream.py.
- The common request, one whole line to echo, is answered in on_read itself
  (ServerConnection.quick_echo) and sent at once, past the outbox: the
  per-message cost of the runtime must not blur the cost of the readiness
  call, which is what the five loops are here to show.
- One thread: counters are bumped in place, without State's lock.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import time
from typing import Any, Callable

from ioproto import NEED_DATA, SLEEP, Reject, Request, ServerConnection, answer

from .effects import HandlerError, perform
from .server import BUFSIZE, Server, close_reason

OUTBOX_LIMIT = 256 << 10  # bytes waiting to be sent before we stop reading
ACCEPT_BATCH = 64  # accepts per readiness report (level-triggered: more will be reported)
_NOTHING: list[Any] = []  # what Timers.run returns when no deadline is due (never appended to)


class Timers:
    """Deadlines on a heap (time.monotonic() seconds), earliest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], Any]]] = []
        self._order = itertools.count()  # equal deadlines fire in the order set, never compared

    def call_at(self, when: float, callback: Callable[[], Any]) -> None:
        heapq.heappush(self._heap, (when, next(self._order), callback))

    def timeout(self) -> float | None:
        """How long the loop may wait for I/O: None (no deadline), else seconds."""
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - time.monotonic())

    def run(self) -> list[Any]:
        """Fire every callback that is due; return what they returned, when
        not None (the connections that have work again after a SLEEP)."""
        if not self._heap:
            return _NOTHING
        woken: list[Any] = []
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            result = heapq.heappop(self._heap)[2]()
            if result is not None:
                woken.append(result)
        return woken


class Connection:
    """One client of an event loop: non-blocking socket, protocol core, outbox."""

    def __init__(self, server: Server, sock: socket.socket, peer: str, timers: Timers) -> None:
        sock.setblocking(False)  # accept(2) does not pass O_NONBLOCK on to the new socket
        self.sock, self.peer, self.timers = sock, peer, timers
        self.fd = sock.fileno()  # kept: fileno() is -1 once closed
        self.trace, self.state = server.trace, server.state
        self.msgs = self.trace.msgs
        self.counters = self.state.counters  # one thread: counted in place, no lock
        self.counters.setdefault("reads", 0)
        self.core = ServerConnection(max_line=server.args.max_line)
        self.outbox = bytearray()  # framed replies not yet taken by send()
        self.asleep: Request | None = None  # the outstanding SLEEP, if any
        self.eof = False  # the peer has closed its side: nothing more to read
        self.reason: str | None = None  # set once the connection is ending
        self.served = 0
        self.closed = False
        self.mask = 0  # what the loop last asked the kernel to watch (poll, epoll)
        # What the loop asks, kept up to date by _refresh() after every change
        # (plain attributes: the loop reads them for every event).
        self.reading = True  # worth a recv(): not ending, not asleep, not held back by the outbox
        self.writing = False  # replies wait in the outbox
        self.done = False  # ending, and nothing left to send: stop watching it, then close()
        self.changed = False  # one of those three may have changed since the loop cleared this
        self.state.opened()

    # -- what the loop reports ---------------------------------------------
    def on_read(self) -> bool:
        """One recv() into the core, answer what it can, try to send.  False
        when recv() would block (EAGAIN), or when this is no time to read."""
        if not self.reading:
            return False
        try:
            data = self.sock.recv(BUFSIZE)
        except BlockingIOError:
            self.state.count("wouldblock")
            return False
        except OSError as exc:
            self._fail(close_reason(exc))
            return True
        self.counters["reads"] += 1  # reads per readiness report tell level from edge
        if self.msgs:
            self.trace.msg("recv", self.peer, data)
        reply = None if self.outbox else self.core.quick_echo(data)
        if reply is not None:  # the common case: one whole line to echo, nothing waiting
            self.served += 1
            sent = self._send(reply)
            if sent < 0:
                return True
            if self.msgs and sent:
                self.trace.msg("send", self.peer, reply[:sent])
            if sent < len(reply):  # the rest waits in the outbox
                self.outbox += reply[sent:]
                self._refresh()
            return True
        self.eof = not data
        self.core.receive_data(data)
        self._answer()
        if self.outbox:
            # The socket is nearly always writable: trying now saves a trip
            # through the readiness call for the common, small reply.
            self.on_write()
        self._refresh()
        return True

    def on_write(self) -> bool:
        """One send() from the outbox.  False when there is nothing to send or
        send() would block (EAGAIN): the peer is not reading fast enough."""
        if not self.outbox:
            return False
        sent = self._send(self.outbox)
        if sent <= 0:
            return sent < 0  # 0: it would block
        if self.msgs:
            with memoryview(self.outbox) as view:  # released before the outbox shrinks
                self.trace.msg("send", self.peer, view[:sent])
        del self.outbox[:sent]  # cheap: a bytearray drops its head without copying
        if len(self.outbox) < OUTBOX_LIMIT:
            self._answer()  # requests held back by a full outbox, if any
        self._refresh()
        return True

    def on_error(self) -> None:
        """The kernel reports the socket broken or hung up (POLLERR/POLLHUP):
        nothing can be sent any more.  Take the reason from SO_ERROR."""
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._fail(close_reason(OSError(err, os.strerror(err))) if err else "hangup")

    def close(self, reason: str | None = None) -> None:
        """Close the socket and log why (``reason`` overrides, e.g. shutdown)."""
        if self.closed:
            return
        self.closed = True
        self.reason = reason or self.reason or "eof"
        self._refresh()
        self.sock.close()
        self.state.closed()
        self.trace.conn("close", self.peer, reason=self.reason, requests=self.served)

    # -- inside --------------------------------------------------------------
    def _send(self, data: bytes | bytearray) -> int:
        """One send(): the bytes it took; 0 when it would block (EAGAIN: a
        non-blocking send of something never takes nothing), -1 when the
        connection failed."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            self.state.count("wouldblock")
            return 0
        except OSError as exc:
            self._fail(close_reason(exc))
            return -1

    def _refresh(self) -> None:
        """Recompute reading, writing and done after a change."""
        waiting = len(self.outbox)
        ending = self.reason is not None
        self.writing = waiting > 0
        self.reading = not ending and self.asleep is None and not self.eof and waiting < OUTBOX_LIMIT
        self.done = ending and not waiting and not self.closed
        self.changed = True

    def _answer(self) -> None:
        """Answer the requests the core holds, until it needs data, a SLEEP
        starts, the outbox is full or the connection ends."""
        while self.reason is None and self.asleep is None and len(self.outbox) < OUTBOX_LIMIT:
            event = self.core.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, Request):
                if event.op == SLEEP:  # a deadline, not a wait: the loop serves others meanwhile
                    self.asleep = event
                    self.timers.call_at(time.monotonic() + event.arg / 1000, self._wake)
                    return
                try:
                    reply = perform(event, self.state, on_crash=self._crashing)  # BLOCK blocks all
                except HandlerError as exc:
                    self.trace.event("error", self.peer, kind="handler", detail=str(exc))
                    self.reason = "raise"  # replies already answered still go out, then close
                    return
                self._reply(event, reply)
            elif isinstance(event, Reject):
                self.trace.event("error", self.peer, kind="protocol", detail=event.reason)
                self.outbox += event.data  # say why, then close
                self.reason = event.reason
            else:  # Close: the peer finished, or HTTP asked to close
                self.reason = event.reason

    def _reply(self, request: Request, line: bytes) -> None:
        self.outbox += self.core.send(line)
        self.served += 1

    def _wake(self) -> Connection | None:
        """The SLEEP's deadline has come: answer it, then what queued behind."""
        request, self.asleep = self.asleep, None
        if self.closed or request is None:
            return None  # dropped while asleep: the timer outlived it
        self._reply(request, answer(request))
        self._answer()
        self._refresh()
        return self

    def _fail(self, reason: str) -> None:
        self.reason = reason
        self.outbox.clear()  # nobody left to send it to
        self._refresh()

    def _crashing(self) -> None:
        # The process is about to die from SIGSEGV: write the buffered trace now.
        self.trace.event("crash", self.peer)
        self.trace.flush()
