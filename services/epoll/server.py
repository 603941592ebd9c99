"""epoll: one thread, a level-triggered epoll readiness loop.

The kernel keeps the interest list: each socket is registered once and its
mask modified only when what the connection waits for changes (read, write,
both, or neither while a SLEEP is pending).  epoll_wait() then returns just
the descriptors that are ready, so a turn costs what is ready, not what is
open: the answer to select's and poll's scan of every descriptor.

Level-triggered means epoll reports a socket for as long as it is ready, not
only when it becomes ready.  So the loop reads once per report and goes back
to waiting: if bytes are left, the next epoll_wait() says so again, and the
other clients get their turn in between.  Compare epoll-edge, which must
drain every socket until EAGAIN because it is told only once.

Idle, the loop sleeps in the kernel at no CPU cost.  What is still the same
as every single-threaded loop: BLOCK stops everything, and a CRASH takes
every connection with the one process.
"""

import select
import time

import iorun
from iorun import loop

MODEL = "epoll"
IN, OUT = select.EPOLLIN, select.EPOLLOUT
BROKEN = select.EPOLLERR | select.EPOLLHUP  # always reported, whatever the mask


def main() -> None:
    server = iorun.Server(MODEL, __doc__, autoflush=False)
    listener = server.listen(blocking=False)
    lfd, state, timers = listener.fileno(), server.state, loop.Timers()
    conns: dict[int, loop.Connection] = {}
    ep = select.epoll()
    ep.register(lfd, IN)
    wake = server.waker()  # a stop signal just before the wait still ends it
    ep.register(wake, IN)

    def accept() -> None:
        for _ in range(loop.ACCEPT_BATCH):  # the rest, if any, is reported again
            accepted = server.accept()
            if accepted is None:
                return
            if accepted is iorun.BACKOFF:  # out of descriptors: a ready listener would spin
                ep.unregister(lfd)
                timers.call_at(time.monotonic() + iorun.ACCEPT_BACKOFF, lambda: ep.register(lfd, IN))
                return
            conn = loop.Connection(server, *accepted, timers)
            conns[conn.fd] = conn
            ep.register(conn.fd, IN)
            conn.mask = IN

    def update(conn: loop.Connection) -> None:
        """Watch what the connection waits for now, or forget it once done."""
        conn.changed = False
        if conn.done:
            ep.unregister(conn.fd)  # before close(): the number may be reused at once
            del conns[conn.fd]
            conn.close()
            return
        mask = (IN if conn.reading else 0) | (OUT if conn.writing else 0)
        if mask != conn.mask:
            ep.modify(conn.fd, mask)
            conn.mask = mask

    def run() -> None:
        try:
            while True:
                server.trace.flush()
                ready = ep.poll(timers.timeout())  # sleeps in the kernel until something is ready
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
                            conn.on_read()  # once: if more is left, epoll reports it again
                        if mask & OUT:
                            conn.on_write()
                    if conn.changed:  # the common echo changes nothing
                        update(conn)
                for conn in timers.run():  # SLEEPs that just ended have replies to send
                    update(conn)
        finally:
            for conn in list(conns.values()):
                conn.close("shutdown")
            ep.close()

    server.run(run)


if __name__ == "__main__":
    main()
