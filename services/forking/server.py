"""forking: one process per connection, made with fork() when the client arrives.

The parent only accepts.  For each client it forks a child, which serves
that client with the same blocking recv/answer/send loop as the blocking
model and then leaves through os._exit (never by returning into the
parent's code: no cleanup of the parent's runs twice).  The parent closes
its copy of the client socket and goes back to accept().

What to notice: a child is a whole process with its own memory, so a CRASH
kills one child and one connection, and the parent logs how it died and
serves on.  CPU-bound WORK runs in parallel on every core, with no GIL
between children.  The same isolation splits the state: an INCR counter,
or STATS, is that child's own, never the server's.  The cost is a fork and
a process table entry per client (compose caps the pids), and the duty to
reap: a child that has exited stays a zombie until the parent waits for it,
which it does whenever SIGCHLD arrives.
"""

import os
import signal
import socket
import time

import iorun

MODEL = "forking"
# Held off while forking: a signal between fork() and the child's own setup
# would run the parent's handler in the child, and the parent must have
# recorded a child before the SIGCHLD handler can reap it.
SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def how_it_ended(status: int) -> dict[str, object]:
    if os.WIFSIGNALED(status):
        return {"signal": signal.Signals(os.WTERMSIG(status)).name}
    return {"status": os.WEXITSTATUS(status)}


def main() -> None:
    server = iorun.Server(MODEL, __doc__)
    server.listen()
    children: dict[int, str] = {}  # pid -> the peer it serves

    def reap(flags: int = os.WNOHANG) -> None:
        """Collect every child that has exited (with flags=0: wait for all)."""
        while True:
            try:
                pid, status = os.waitpid(-1, flags)
            except ChildProcessError:  # no children left
                return
            if pid == 0:  # children remain, none has exited yet
                return
            ended = how_it_ended(status)
            log = server.trace.conn if ended == {"status": 0} else server.trace.event
            log("child-exit", children.pop(pid, "?"), child=pid, **ended)

    def child(sock: socket.socket, peer: str) -> None:
        status = 1
        try:
            for sig in SIGNALS:  # the parent's handlers are not the child's business
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            server.sock.close()  # only the parent accepts
            iorun.serve_connection(server, sock, peer)
            status = 0
        except Exception as exc:
            server.trace.event("error", peer, kind="child", detail=repr(exc))
        finally:
            os._exit(status)  # never return into the parent's loop

    def fork(sock: socket.socket, peer: str) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN: out of processes (pids_limit); drop this one
            server.trace.event("error", peer, kind="fork", detail=str(exc), backoff=iorun.ACCEPT_BACKOFF)
            time.sleep(iorun.ACCEPT_BACKOFF)
        else:
            if pid == 0:
                child(sock, peer)
            children[pid] = peer
            server.trace.conn("fork", peer, child=pid)
        finally:
            sock.close()  # the child has its own copy
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def loop() -> None:
        signal.signal(signal.SIGCHLD, lambda *_: reap())  # interrupts accept(), which resumes
        try:
            while True:
                accepted = server.accept()  # blocks until a client is queued
                if accepted is iorun.BACKOFF:
                    time.sleep(iorun.ACCEPT_BACKOFF)
                    continue
                if accepted is not None:
                    fork(*accepted)
        finally:  # stopping: end the children's connections and wait for every one
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # no reaping or second stop meanwhile
            for pid in list(children):
                os.kill(pid, signal.SIGTERM)
            reap(0)

    server.run(loop)


if __name__ == "__main__":
    main()
