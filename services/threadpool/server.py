"""threadpool: a fixed pool of threads, started before any client comes.

The main thread only accepts, and puts each new connection on a queue.
--workers threads, started in advance, each take one connection off the
queue and serve it with the same blocking recv/answer/send loop as the
blocking model until that client leaves, then take the next.  With every
thread busy, a new client is accepted (its handshake done, its requests
buffered) but nobody reads it: it waits in the queue until a thread is free.

What to notice: the number of threads, and the memory they cost, no longer
grows with the clients, so the server cannot be made to spawn itself to
death; the price is that at most N clients are served at once.  The queue
is unbounded, so waiting clients hold descriptors until accept() runs out
(EMFILE: log, back off, go on).  Like the threads model it is one process:
the GIL lets one thread run Python at a time, so CPU-bound WORK from four
clients takes as long as doing them one after another, INCR loses updates
between threads, and a CRASH in any handler takes the whole pool down.
STATS counts the clients "queued" besides the connections being served.
"""

import queue
import signal
import socket
import threading
import time

import iorun

MODEL = "threadpool"
SIGNALS = {signal.SIGTERM, signal.SIGINT}


def main() -> None:
    server = iorun.Server(MODEL, __doc__, workers=4)
    server.listen()
    waiting: "queue.Queue[tuple[socket.socket, str]]" = queue.Queue()

    def worker() -> None:
        while True:
            accepted = waiting.get()  # blocks until the main thread queues a client
            server.state.count("queued", -1)
            iorun.serve_connection(server, *accepted)  # nobody else on this thread until it returns

    server.state.counters["queued"] = 0
    # SIGTERM must interrupt the main thread, the only one Python's handler
    # runs in: the pool threads inherit a mask that blocks it.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    for _ in range(server.args.workers):
        threading.Thread(target=worker, daemon=True).start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def loop() -> None:
        while True:
            accepted = server.accept()  # blocks until a client is queued
            if accepted is iorun.BACKOFF:
                time.sleep(iorun.ACCEPT_BACKOFF)
                continue
            if accepted is not None:
                server.state.count("queued")
                waiting.put(accepted)

    server.run(loop)


if __name__ == "__main__":
    main()
