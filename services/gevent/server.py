"""gevent: green threads, the threads model run cooperatively in one OS thread.

The code is the threads model's: the main greenlet accepts, and each client
gets its own greenlet running the blocking recv/answer/send loop that
blocking, threads and forking run (iorun.serve_connection).  What changes is
underneath: monkey patching, done before anything else is imported, swaps
the socket, time and threading modules for gevent's.  A recv() that would
block now parks the greenlet and switches to gevent's hub, an event loop
(libev's epoll), which resumes whichever greenlet's socket is ready.  So the
handler reads as blocking code and behaves as a coroutine, with no await:
the yields are hidden inside the patched calls.

What to notice: one OS thread however many clients (a greenlet is a small
heap-allocated stack, not a kernel task), and a SLEEP is a timer in the hub.
Patching reaches only Python calls it knows.  BLOCK is a time.sleep() in
iorun.perform, and time.sleep is patched: under gevent it is a cooperative
wait too and stalls nobody, unlike in every other single-threaded model.  A
call gevent does not patch (a C library that waits, or CPU-bound WORK) holds
the only thread, and every other client waits.  INCR splits its read and
write with time.sleep(0), which here is a switch to the hub: other greenlets
run in between and unlocked updates are lost, as between OS threads.  A
CRASH kills the one process and every connection.
"""

import signal
import sys

try:
    from gevent import monkey
except ImportError as exc:
    print(f"gevent: cannot import gevent ({exc}); run it on the lab's Debian base image "
          "(LAB_BASE_IMAGE=iolab/base:bookworm, with python3-gevent) or pip install gevent",
          file=sys.stderr)
    sys.exit(2)
monkey.patch_all()  # before iorun imports socket, time and threading: they are gevent's now

import gevent  # noqa: E402

import iorun  # noqa: E402

MODEL = "gevent"


def main() -> None:
    server = iorun.Server(MODEL, __doc__)
    server.listen()

    def loop() -> None:
        # Server.run's handler would raise Shutdown in whichever greenlet is
        # running, which may be a client's.  gevent's own handler runs in a
        # greenlet of its own, in the hub's turn, and stops the main greenlet.
        main_greenlet = gevent.getcurrent()
        for sig in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(sig, main_greenlet.throw, iorun.Shutdown(sig.name))
        while True:
            accepted = server.accept()  # parks this greenlet until a client is queued
            if accepted is iorun.BACKOFF:
                gevent.sleep(iorun.ACCEPT_BACKOFF)
                continue
            if accepted is not None:
                gevent.spawn(iorun.serve_connection, server, *accepted)  # a greenlet, not a thread

    server.run(loop)


if __name__ == "__main__":
    main()
