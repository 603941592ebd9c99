"""uring: one thread, one io_uring: operations submitted, completions reaped.

Every other loop here asks the kernel "tell me when it is ready": select,
poll and epoll report that a socket could be read or written now, and the
loop then makes the recv() or send() call itself, one system call each.
io_uring turns that round: "do this, and tell me when it is done".  The loop
writes each operation it wants (accept on the listener, recv on a client,
send these bytes, wake me at this instant) into a submission queue that it
shares with the kernel, and one io_uring_enter() hands the kernel every
queued operation and sleeps until at least one is finished.  The kernel does
the I/O on its own; when a completion comes back, the bytes are already
received or already sent, and its result says how many (or which error).
The completion queue is shared memory too: reaping costs no system call.

So system calls no longer follow messages.  One io_uring_enter per loop
turn submits every recv and send the last turn queued and waits for what is
done next.  A lone client costs two per reply (the send is done at once, so
that enter returns, and the next one waits for the request after), where
epoll makes three (epoll_wait, recv, send); with 50 clients a turn reaps
dozens of completions and the server makes a few enters per hundred replies
(STATS: enters, submitted, events).

The other side of "when it is done": a completion API must be given its
buffer when the operation is submitted, before any byte exists.  A recv here
is submitted without one; the kernel takes a buffer from a shared pool when
bytes arrive (a provided-buffer ring), so 10,000 idle clients pin no memory.

What is still the same as every single-threaded loop: our Python code runs
between two enters, so BLOCK (a real blocking call) and WORK stop every
client, and a CRASH takes the one process and all its connections.  A SLEEP
is a timeout operation on the ring, and stalls nobody.
"""

import ctypes
import itertools
import os
import time

import iorun
from iorun import loop, uring
from iorun.uring import ACCEPT, KIND, KIND_BITS, RECV, SEND, TIMER, WAKE

MODEL = "uring"


def main() -> None:
    server = iorun.Server(MODEL, __doc__, autoflush=False)
    try:
        ring = uring.Ring()  # before listening: where io_uring is refused, nothing starts
    except uring.Refused as exc:
        uring.refuse(MODEL, exc)
    listener = server.listen(blocking=False)
    listener.setblocking(True)  # the ring waits for clients itself (iorun/uring.py says why)
    lfd, state, timers = listener.fileno(), server.state, loop.Timers()
    conns: dict[int, uring.Connection] = {}
    keys = itertools.count(1)
    peer = uring.Peer()  # where the accept in flight has the kernel write the client's address
    wake = server.waker()  # a stop signal just before the wait still ends it: a read is in flight on it
    os.set_blocking(wake, True)
    woken = ctypes.create_string_buffer(64)
    timer: list = [None]  # (deadline, key) of the timeout in flight, if any
    timespecs: dict[int, object] = {}  # each timeout's timespec, alive until its completion

    def accept() -> None:
        """One accept in flight at a time, submitted again as soon as it is done."""
        ring.accept(lfd, *peer.arm(), ACCEPT)

    def on_accept(res: int) -> None:
        accepted = uring.accepted(server, res, peer)
        if accepted is iorun.BACKOFF:  # out of descriptors: it would fail again at once, and spin
            timers.call_at(time.monotonic() + iorun.ACCEPT_BACKOFF, accept)
            return
        accept()
        if accepted is None:
            return
        conn = uring.Connection(server, *accepted, timers, ring, next(keys))
        conns[conn.key] = conn
        update(conn)

    def read_waker() -> None:
        ring.read(wake, ctypes.addressof(woken), len(woken), WAKE)

    def arm_timer() -> None:
        """A timeout on the ring for the earliest deadline (SLEEP, accept's back-off)."""
        wait = timers.timeout()
        if wait is None:
            return
        deadline = time.monotonic() + wait
        if timer[0] is not None and timer[0][0] <= deadline:
            return  # the one in flight comes first
        key = next(keys)
        timespecs[key] = spec = uring.timespec(deadline)
        ring.timeout(ctypes.addressof(spec), key << KIND_BITS | TIMER)
        timer[0] = (deadline, key)

    def update(conn: uring.Connection) -> None:
        """Submit what the connection needs next, or forget it once done."""
        if conn.submit():
            del conns[conn.key]
            conn.close()

    def run() -> None:
        try:
            read_waker()
            accept()
            while True:
                server.trace.flush()
                arm_timer()
                ring.submit(1)  # one system call: every queued operation goes in; sleeps until one is done
                done = ring.completions()
                state.count("wakeups")
                state.count("events", len(done))
                for user_data, res, flags in done:
                    kind, key = user_data & KIND, user_data >> KIND_BITS
                    if kind == RECV:
                        conn = conns[key]
                        conn.on_recv(res, flags)  # the bytes are already here
                        update(conn)
                    elif kind == SEND:
                        conn = conns[key]
                        conn.on_sent(res)  # the bytes are already gone
                        update(conn)
                    elif kind == ACCEPT:
                        on_accept(res)
                    elif kind == TIMER:
                        del timespecs[key]
                        if timer[0] is not None and timer[0][1] == key:
                            timer[0] = None
                    elif kind == WAKE:  # a signal's byte, already read; its handler runs on its own
                        read_waker()
                    # CANCEL: the cancelled recv's own completion says what became of it
                for conn in timers.run():  # SLEEPs that just ended have replies to send
                    update(conn)
                state.counters["enters"], state.counters["submitted"] = ring.enters, ring.submitted
        finally:
            ring.close()  # the kernel cancels what is still in flight
            for conn in list(conns.values()):
                conn.close("shutdown")

    server.run(run)


if __name__ == "__main__":
    main()
