"""coroutines: a hand-written scheduler, plain generators over epoll.

This is what asyncio does underneath, small enough to read in one go.  A
task is a generator.  Where a blocking server would wait, a task yields what
it is waiting for instead, and the scheduler parks it:

    yield READ, sock      resume me once sock is readable
    yield WRITE, sock     ... once sock is writable
    yield SLEEP_UNTIL, t  ... once time.monotonic() reaches t

The scheduler keeps a queue of tasks ready to run, a heap of sleeping tasks
and, for the parked sockets, epoll.  Each turn it resumes every ready task
until that task yields again, then asks epoll for the sockets that became
ready (waiting at most until the earliest sleeper is due) and moves their
tasks, and the sleepers whose time has come, back to the ready queue.  The
helpers recv(), sendall() and sleep() wrap the yields, and a handler calls
them with ``yield from``: that is ``await`` spelled the old way.

What to notice: one thread serves every client, each task costs a generator
frame and a socket, and a SLEEP is an entry on the heap, so it stalls
nobody.  Nothing preempts a task: it runs until it yields.  So INCR, which
never yields between its read and its write, loses no update; but BLOCK (a
real blocking call) and WORK (the CPU) hold the only thread, and every other
task waits until they return.  A CRASH kills the process and every
connection with it.
"""

import collections
import heapq
import itertools
import select
import socket
import time
from typing import Any, Callable, Generator

import iorun
from ioproto import NEED_DATA, SLEEP, Reject, Request, ServerConnection

MODEL = "coroutines"
READ, WRITE, SLEEP_UNTIL = "read", "write", "sleep"
Task = Generator[tuple[str, Any], None, Any]  # what a task yields: (READ, sock), ...


class Scheduler:
    """Runs tasks in one thread, resuming each when what it waits for is true."""

    def __init__(self, wake: int, woken: Callable[[], None]) -> None:
        self.ready: collections.deque[Task] = collections.deque()
        self.sleeping: list[tuple[float, int, Task]] = []  # a heap, earliest first
        self.parked: dict[int, Task] = {}  # fd -> the task waiting on that socket
        self.tasks: set[Task] = set()  # every live task, to close them at the end
        self.order = itertools.count()  # equal deadlines wake in the order set
        self.epoll = select.epoll()
        # iorun's waker: a stop signal that lands just before epoll_wait still ends it.
        self.wake, self.woken = wake, woken
        self.epoll.register(wake, select.EPOLLIN)

    def spawn(self, task: Task) -> None:
        self.tasks.add(task)
        self.ready.append(task)

    def step(self, task: Task) -> None:
        """Run one task until it yields, then park it where it said."""
        try:
            what, arg = task.send(None)
        except StopIteration:
            self.tasks.discard(task)
            return
        if what == SLEEP_UNTIL:
            heapq.heappush(self.sleeping, (arg, next(self.order), task))
            return
        fd = arg.fileno()
        # ONESHOT: reported once, then ignored until the task waits on it again,
        # so a socket whose task is busy elsewhere is never reported in vain.
        mask = (select.EPOLLIN if what == READ else select.EPOLLOUT) | select.EPOLLONESHOT
        try:
            self.epoll.modify(fd, mask)
        except FileNotFoundError:  # the first wait on this socket
            self.epoll.register(fd, mask)
        self.parked[fd] = task

    def forget(self, sock: socket.socket) -> None:
        """Before a socket is closed: its number may be reused at once."""
        try:
            self.epoll.unregister(sock)
        except (FileNotFoundError, ValueError):  # never waited on, or closed already
            pass

    def run(self, trace: iorun.Trace, state: iorun.State) -> None:
        try:
            while True:
                while self.ready:
                    self.step(self.ready.popleft())
                trace.flush()
                timeout = max(0.0, self.sleeping[0][0] - time.monotonic()) if self.sleeping else None
                events = self.epoll.poll(timeout)  # sleeps in the kernel until a socket is ready
                state.count("wakeups")
                for fd, _ in events:  # readable, writable or broken: the task's next call says which
                    if fd == self.wake:
                        self.woken()
                    else:
                        self.ready.append(self.parked.pop(fd))
                now = time.monotonic()
                while self.sleeping and self.sleeping[0][0] <= now:
                    self.ready.append(heapq.heappop(self.sleeping)[2])
        finally:
            for task in list(self.tasks):
                task.close()  # GeneratorExit at its yield: each connection logs its close
            self.epoll.close()


# -- what a task calls instead of blocking -----------------------------------

def recv(sock: socket.socket, state: iorun.State) -> Task:
    while True:
        try:
            return sock.recv(iorun.BUFSIZE)
        except BlockingIOError:
            state.count("wouldblock")
            yield READ, sock  # nothing there yet: park until there is


def sendall(sock: socket.socket, data: bytes) -> Task:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            yield WRITE, sock  # the peer's window is full: park until there is room


def sleep(seconds: float) -> Task:
    yield SLEEP_UNTIL, time.monotonic() + seconds


def main() -> None:
    server = iorun.Server(MODEL, __doc__, autoflush=False)
    trace, state = server.trace, server.state
    sched = Scheduler(server.waker(), server.woken)

    def serve(sock: socket.socket, peer: str) -> Task:
        """One client: iorun.serve_connection's loop, with yield from at each wait."""
        conn = ServerConnection(max_line=server.args.max_line)
        state.opened()
        reason, served = "eof", 0

        def crashing() -> None:  # the process is about to die: write the buffered trace now
            trace.event("crash", peer)
            trace.flush()

        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    data = yield from recv(sock, state)
                    trace.msg("recv", peer, data)
                    conn.receive_data(data)
                elif isinstance(event, Request):
                    if event.op == SLEEP:
                        yield from sleep(event.arg / 1000)  # on the heap: the others run meanwhile
                    out = conn.send(iorun.perform(event, state, on_crash=crashing))  # BLOCK blocks all
                    yield from sendall(sock, out)
                    trace.msg("send", peer, out)
                    served += 1
                else:
                    if isinstance(event, Reject):
                        trace.event("error", peer, kind="protocol", detail=event.reason)
                        yield from sendall(sock, event.data)
                    reason = event.reason
                    break
        except iorun.HandlerError as exc:
            reason = "raise"
            trace.event("error", peer, kind="handler", detail=str(exc))
        except OSError as exc:
            reason = iorun.close_reason(exc)
        except (GeneratorExit, iorun.Shutdown):  # the server is stopping
            reason = "shutdown"
            raise
        finally:
            state.closed()
            sched.forget(sock)
            sock.close()
            trace.conn("close", peer, reason=reason, requests=served)

    def accept(listener: socket.socket) -> Task:
        while True:
            accepted = server.accept()
            if accepted is None:
                yield READ, listener  # nobody queued: park until somebody is
            elif accepted is iorun.BACKOFF:  # out of descriptors: try again a little later
                yield from sleep(iorun.ACCEPT_BACKOFF)
            else:
                sock, peer = accepted
                sock.setblocking(False)  # accept(2) does not pass O_NONBLOCK on
                sched.spawn(serve(sock, peer))

    sched.spawn(accept(server.listen(blocking=False)))
    server.run(lambda: sched.run(trace, state))


if __name__ == "__main__":
    main()
