"""busypoll: one thread, non-blocking sockets tried in a tight loop.

This is non-blocking I/O with no readiness API at all.  Every socket is
non-blocking, so accept(), recv() and send() return at once: with a client,
some bytes or a reply sent, or with EAGAIN ("nothing now, try later").  The
loop does try later, straight away: it asks the listener and every
connection in turn, over and over, and never sleeps.  One thread serves
every client, and SLEEP still stalls nobody: each turn compares the earliest
deadline on the timer heap with the clock.

The price is the one the readiness APIs exist to avoid.  Idle, the loop
burns a whole core asking questions whose answer is "not yet": watch the
wouldblock counter in STATS climb by tens of thousands a second while no
client says a word.  Busy, each turn costs a system call per open
connection, ready or not, so the more clients sit idle, the slower the busy
ones are served.  BLOCK stalls everybody; a CRASH takes the process and
every client in it.
"""

import time

import iorun
from iorun import loop

MODEL = "busypoll"


def main() -> None:
    server = iorun.Server(MODEL, __doc__, autoflush=False)
    server.listen(blocking=False)
    state, timers = server.state, loop.Timers()
    conns: dict[int, loop.Connection] = {}
    listening = True

    def resume() -> None:
        nonlocal listening
        listening = True

    def accept() -> None:
        nonlocal listening
        for _ in range(loop.ACCEPT_BATCH):  # until EAGAIN, which is the usual answer
            accepted = server.accept()
            if accepted is None:
                return
            if accepted is iorun.BACKOFF:  # out of descriptors: stop asking for a moment
                listening = False
                timers.call_at(time.monotonic() + iorun.ACCEPT_BACKOFF, resume)
                return
            state.count("events")
            conn = loop.Connection(server, *accepted, timers)
            conns[conn.fd] = conn

    def run() -> None:
        try:
            while True:  # never waits: no select, no poll, no sleep
                server.trace.flush()
                state.count("wakeups")  # here: one turn of the loop
                if listening:
                    accept()
                for conn in list(conns.values()):
                    # Just try: a recv() or send() that cannot proceed says EAGAIN.
                    if conn.reading and conn.on_read():
                        state.count("events")
                    if conn.writing and conn.on_write():
                        state.count("events")
                    if conn.done:
                        del conns[conn.fd]
                        conn.close()
                timers.run()  # SLEEPs: is the earliest deadline past yet?
        finally:
            for conn in list(conns.values()):
                conn.close("shutdown")

    server.run(run)


if __name__ == "__main__":
    main()
