"""prefork: a fixed pool of worker processes, forked before any client comes.

The master listens, forks --workers processes, and from then on only
supervises.  Every worker is the blocking model: it blocks in accept() on
the one listening socket they all inherited, serves the client it got until
that client leaves, and goes back to accept().  The kernel hands each new
connection to one idle worker (Linux wakes a single waiter, so there is no
thundering herd).  With every worker busy, the next clients wait in the
listen backlog, as they do for the blocking server.

What to notice: the cost of fork() is paid once, not per client, and at most
N clients are served at once.  Workers are processes, so WORK runs on every
core in parallel, INCR counts per worker, STATS describes the worker that
answered, and a CRASH kills only the worker that ran it: the master, asleep
in waitpid(), wakes, logs the death and forks a replacement, so the pool
stays at N.  On SIGTERM the master ends the workers and reaps them.
"""

import ctypes
import os
import signal
import time

import iorun

MODEL = "prefork"
SIGNALS = {signal.SIGTERM, signal.SIGINT}  # held off while forking (see worker)
PR_SET_PDEATHSIG = 1


def how_it_ended(status: int) -> dict[str, object]:
    if os.WIFSIGNALED(status):
        return {"signal": signal.Signals(os.WTERMSIG(status)).name}
    return {"status": os.WEXITSTATUS(status)}


def main() -> None:
    server = iorun.Server(MODEL, __doc__, workers=4)
    server.listen()
    master = os.getpid()
    workers: set[int] = set()

    def worker() -> None:
        status = 1
        try:
            for sig in SIGNALS:  # a signal to a worker ends it; Shutdown is the master's
                signal.signal(sig, signal.SIG_DFL)
            # Should the master be killed outright, its workers must not live on
            # holding the port: the kernel sends them SIGTERM when it dies.
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            if os.getppid() != master:  # it died before prctl: nobody to work for
                return
            while True:
                accepted = server.accept()  # blocks until a client is queued
                if accepted is iorun.BACKOFF:
                    time.sleep(iorun.ACCEPT_BACKOFF)
                elif accepted is not None:
                    iorun.serve_connection(server, *accepted)  # one client at a time
        except Exception as exc:
            server.trace.event("error", kind="worker", detail=repr(exc))
        finally:
            os._exit(status)  # never return into the master's loop

    def start_worker() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN: out of processes; try again shortly
            server.trace.event("error", kind="fork", detail=str(exc), backoff=iorun.ACCEPT_BACKOFF)
            time.sleep(iorun.ACCEPT_BACKOFF)
        else:
            if pid == 0:
                worker()
            workers.add(pid)
            server.trace.event("worker-start", worker=pid, workers=len(workers))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def reaped(pid: int, status: int) -> None:
        workers.discard(pid)
        server.trace.event("worker-exit", worker=pid, workers=len(workers), **how_it_ended(status))

    def loop() -> None:
        try:
            while True:
                while len(workers) < server.args.workers:
                    start_worker()
                reaped(*os.waitpid(-1, 0))  # the master sleeps here until a worker dies
        finally:  # stopping: end every worker and wait for each one
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # a second SIGTERM must not cut this short
            for pid in workers:
                os.kill(pid, signal.SIGTERM)
            while workers:
                reaped(*os.waitpid(-1, 0))

    server.run(loop)


if __name__ == "__main__":
    main()
