"""poll: one thread, a select.poll() readiness loop.

poll() fixes select's two faults and keeps its third.  The interest list is
an array of (descriptor, events) pairs, not a fixed bitmap, so there is no
limit at descriptor 1024; and Python's poll object keeps that list between
calls, so the loop registers a socket once and modifies it only when what
the connection waits for changes.  But every poll() call still hands the
whole list to the kernel, which checks every socket on it and hands it all
back: a turn costs one step per open connection, busy or idle.  With ten
thousand idle clients and one busy one, that is ten thousand steps to find
one.  epoll removes that.

Readiness here is level-triggered, like select's: a socket with bytes left
is reported again, so the loop reads once per report.  The timeout is in
milliseconds, rounded up so a SLEEP that is almost due does not spin.  Idle,
the loop sleeps in the kernel; BLOCK stalls it; a CRASH takes it all.
"""

import math
import select
import time

import iorun
from iorun import loop

MODEL = "poll"
IN, OUT = select.POLLIN, select.POLLOUT
BROKEN = select.POLLERR | select.POLLHUP | select.POLLNVAL  # always reported, whatever the mask


def main() -> None:
    server = iorun.Server(MODEL, __doc__, autoflush=False)
    listener = server.listen(blocking=False)
    lfd, state, timers = listener.fileno(), server.state, loop.Timers()
    conns: dict[int, loop.Connection] = {}
    pl = select.poll()
    pl.register(lfd, IN)
    wake = server.waker()  # a stop signal just before the wait still ends it
    pl.register(wake, IN)

    def accept() -> None:
        for _ in range(loop.ACCEPT_BATCH):  # the rest, if any, is reported again
            accepted = server.accept()
            if accepted is None:
                return
            if accepted is iorun.BACKOFF:  # out of descriptors: a ready listener would spin
                pl.unregister(lfd)
                timers.call_at(time.monotonic() + iorun.ACCEPT_BACKOFF, lambda: pl.register(lfd, IN))
                return
            conn = loop.Connection(server, *accepted, timers)
            conns[conn.fd] = conn
            pl.register(conn.fd, IN)
            conn.mask = IN

    def update(conn: loop.Connection) -> None:
        """Watch what the connection waits for now, or forget it once done."""
        conn.changed = False
        if conn.done:
            pl.unregister(conn.fd)
            del conns[conn.fd]
            conn.close()
            return
        mask = (IN if conn.reading else 0) | (OUT if conn.writing else 0)
        if mask != conn.mask:
            pl.modify(conn.fd, mask)
            conn.mask = mask

    def run() -> None:
        try:
            while True:
                server.trace.flush()
                timeout = timers.timeout()
                ready = pl.poll(None if timeout is None else math.ceil(timeout * 1000))
                state.count("wakeups")
                state.count("events", len(ready))
                for fd, mask in ready:
                    conn = conns.get(fd)
                    if conn is None:  # the listener, or the waker
                        if fd == lfd:
                            accept()
                        else:
                            server.woken()
                        continue
                    if mask & BROKEN:
                        conn.on_error()
                    else:
                        if mask & IN:
                            conn.on_read()  # once: if more is left, poll reports it again
                        if mask & OUT:
                            conn.on_write()
                    if conn.changed:  # the common echo changes nothing
                        update(conn)
                for conn in timers.run():  # SLEEPs that just ended have replies to send
                    update(conn)
        finally:
            for conn in list(conns.values()):
                conn.close("shutdown")

    server.run(run)


if __name__ == "__main__":
    main()
