"""blocking: one thread, blocking accept() and recv(): one client at a time.

The server accepts a client and serves it until that client leaves.  While
it waits in recv() for the client it holds, other clients are not refused:
the kernel completes their handshakes and queues them in the listen backlog,
and their requests wait in kernel buffers.  They are served, in turn, only
after the client ahead of them disconnects.
"""

import time

import iorun

MODEL = "blocking"


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
                iorun.serve_connection(server, *accepted)  # nobody else until it returns

    server.run(loop)


if __name__ == "__main__":
    main()
