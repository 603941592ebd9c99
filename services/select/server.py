"""select: one thread, the classic select() readiness loop.

Every socket is non-blocking, and the loop never guesses: it hands select()
the sockets it wants to read and those it wants to write, sleeps in the
kernel until at least one is ready (or the next SLEEP deadline is due), and
then does exactly the recv(), send() or accept() that will not block.  One
thread serves every client, and costs nothing while they are idle.

select() keeps no state.  The sets are rebuilt and copied into the kernel on
every call, the kernel checks every socket in them, and the loop scans the
result: each turn costs one step per open connection, busy or not.  And the
sets are fixed bitmaps of FD_SETSIZE (1024) bits: a descriptor of 1024 or
more cannot be asked about at all, and Python's select() refuses with a
ValueError.  This loop logs that (error, kind fd_setsize) and closes the
connections it can never serve, so a thousand clients are the ceiling no
matter how many descriptors the process may open.  poll and epoll lift it.

Readiness is level-triggered: a socket with bytes left is reported again,
so the loop reads once per report.  BLOCK stalls everybody; a CRASH takes
the process and every client in it.
"""

import select
import time

import iorun
from iorun import loop

MODEL = "select"
FD_SETSIZE = 1024  # the size of select(2)'s fd_set bitmap: descriptors 0..1023 only


def main() -> None:
    server = iorun.Server(MODEL, __doc__, autoflush=False)
    listener = server.listen(blocking=False)
    lfd, state, timers = listener.fileno(), server.state, loop.Timers()
    conns: dict[int, loop.Connection] = {}
    listening = True
    wake = server.waker()  # a stop signal just before the wait still ends it

    def resume() -> None:
        nonlocal listening
        listening = True

    def accept() -> None:
        nonlocal listening
        for _ in range(loop.ACCEPT_BATCH):  # the rest, if any, is reported again
            accepted = server.accept()
            if accepted is None:
                return
            if accepted is iorun.BACKOFF:  # out of descriptors: a ready listener would spin
                listening = False
                timers.call_at(time.monotonic() + iorun.ACCEPT_BACKOFF, resume)
                return
            conn = loop.Connection(server, *accepted, timers)
            conns[conn.fd] = conn

    def refuse_high(exc: ValueError) -> None:
        """select() would not even start: close what it can never watch."""
        high = sorted(fd for fd in conns if fd >= FD_SETSIZE)
        if not high:
            raise exc
        server.trace.event("error", kind="fd_setsize", fds=high[:64], count=len(high),
                           detail=f"{exc}: select() watches descriptors below {FD_SETSIZE} only; "
                                  f"closing {len(high)} connection(s) it cannot serve")
        for fd in high:
            conns.pop(fd).close("fd_setsize")

    def run() -> None:
        try:
            while True:
                server.trace.flush()
                # Rebuilt every turn: select() remembers nothing between calls.
                readers = [fd for fd, conn in conns.items() if conn.reading] + [wake]
                writers = [fd for fd, conn in conns.items() if conn.writing]
                if listening:
                    readers.append(lfd)
                try:
                    readable, writable, _ = select.select(readers, writers, [], timers.timeout())
                except ValueError as exc:  # "filedescriptor out of range in select()"
                    refuse_high(exc)
                    continue
                state.count("wakeups")
                state.count("events", len(readable) + len(writable))
                for fd in readable:
                    if fd == lfd:
                        accept()
                    elif fd == wake:
                        server.woken()
                    else:
                        conns[fd].on_read()  # once: if more is left, select reports it again
                for fd in writable:
                    conns[fd].on_write()
                timers.run()  # SLEEP replies join the writers on the next turn
                for conn in [c for c in conns.values() if c.done]:
                    del conns[conn.fd]
                    conn.close()
        finally:
            for conn in list(conns.values()):
                conn.close("shutdown")

    server.run(run)


if __name__ == "__main__":
    main()
