"""threads: one OS thread per connection.

The main thread only accepts; each client gets a thread of its own that runs
the same blocking recv/answer/send loop as the blocking model.  A thread
waiting in recv() holds nobody else up, so all clients are served at once.
The cost grows with the clients: one thread (a kernel task and a stack) per
connection, and every thread shares the process, so a crash in any handler
takes them all down.
"""

import threading
import time

import iorun

MODEL = "threads"


def main() -> None:
    server = iorun.Server(MODEL, __doc__)
    server.listen()

    def loop() -> None:
        while True:
            accepted = server.accept()  # blocks until a client is queued
            if accepted is iorun.BACKOFF:
                time.sleep(iorun.ACCEPT_BACKOFF)
                continue
            if accepted is not None:
                threading.Thread(target=iorun.serve_connection, args=(server, *accepted),
                                 daemon=True).start()

    server.run(loop)


if __name__ == "__main__":
    main()
