"""epoll-edge: one thread, an edge-triggered (EPOLLET) epoll readiness loop.

Edge-triggered epoll reports a change, not a state: "bytes arrived", "room
appeared in the send buffer", once.  If the loop reads only part of what is
there, it is not told again until more arrives, and the rest may wait
forever.  So the rule is to drain: accept, recv and send until the call
says EAGAIN, and only then go back to waiting.  The reward is that each
socket is registered once, for both directions, and never modified: no
epoll_ctl per state change, and fewer wake-ups for the same bytes than the
level-triggered epoll model (STATS: events).

The cost is in what the loop must remember for itself.  A connection that
stops short of EAGAIN (a SLEEP is pending, or its outbox is full) still has
bytes in the kernel that no edge will announce, so the loop drains it again
when the SLEEP ends or the outbox empties.  And a client that sends and
reads as fast as we serve keeps us draining its socket while others wait:
edge-triggered loops trade fairness for fewer system calls.  Every drain
ends in an EAGAIN, which STATS counts as wouldblock.
"""

import select
import time

import iorun
from iorun import loop

MODEL = "epoll-edge"
LISTEN = select.EPOLLIN | select.EPOLLET
EDGE = select.EPOLLIN | select.EPOLLOUT | select.EPOLLET  # both directions, registered once
BROKEN = select.EPOLLERR | select.EPOLLHUP


def main() -> None:
    server = iorun.Server(MODEL, __doc__, autoflush=False)
    listener = server.listen(blocking=False)
    lfd, state, timers = listener.fileno(), server.state, loop.Timers()
    conns: dict[int, loop.Connection] = {}
    ep = select.epoll()
    ep.register(lfd, LISTEN)
    wake = server.waker()  # a stop signal just before the wait still ends it
    ep.register(wake, select.EPOLLIN)

    def accept() -> None:
        while True:  # until EAGAIN: this edge will not be reported again
            accepted = server.accept()
            if accepted is None:
                return
            if accepted is iorun.BACKOFF:  # registering again reports a waiting queue at once
                ep.unregister(lfd)
                timers.call_at(time.monotonic() + iorun.ACCEPT_BACKOFF, lambda: ep.register(lfd, LISTEN))
                return
            conn = loop.Connection(server, *accepted, timers)
            conns[conn.fd] = conn
            ep.register(conn.fd, EDGE)  # reports what is already there: the first edge

    def serve(conn: loop.Connection) -> None:
        """Read and write until EAGAIN (or nothing is wanted), then forget it if done."""
        while not conn.done:
            while conn.reading and conn.on_read():
                pass
            sent = False
            while conn.writing and conn.on_write():
                sent = True
            if not sent:  # sending may let reading resume; nothing sent, nothing more to read
                break
        if conn.done:
            ep.unregister(conn.fd)  # before close(): the number may be reused at once
            del conns[conn.fd]
            conn.close()

    def run() -> None:
        try:
            while True:
                server.trace.flush()
                ready = ep.poll(timers.timeout())  # sleeps in the kernel until an edge
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
                    serve(conn)
                for conn in timers.run():  # a SLEEP ended: no edge will say so, drain now
                    serve(conn)
        finally:
            for conn in list(conns.values()):
                conn.close("shutdown")
            ep.close()

    server.run(run)


if __name__ == "__main__":
    main()
