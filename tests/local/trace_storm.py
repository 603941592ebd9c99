"""Write trace events under threads, signals and forks; say what was written.

Run as a script by test_trace_exact.py (its own process: it forks, installs
signal handlers and starts hundreds of threads, none of which belong in the
test runner).  Events go to stdout; at the end, one JSON line on stderr says
what the script recorded, so the test can count exactly.

    trace_storm.py threads N      200 threads log N events each while the main
                                  thread forks children and logs from its
                                  SIGCHLD handler (and a thread adds SIGCHLDs)
    trace_storm.py processes N    8 forked processes share the pipe and their
                                  parent's traces, each logging N lines near
                                  PIPE_BUF; one of them buffered
    trace_storm.py interrupts N   a buffered trace flushed after every few of
                                  N events, while SIGUSR1 raises in its thread
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading

from iorun import Trace

NASTY = b'quote " backslash \\ nul \x00 bell \x07 cr \r tab \t bad utf-8 \xff\xfe \xe2\x82 end\n'
THREADS = 200
FORKS = 50  # at least, while the threads log
PROCESSES = 8
LONG = "x" * 3800  # with the rest of the line, just below _LINE_MAX: near PIPE_BUF


class Interrupted(Exception):
    """What the SIGUSR1 handler raises, as SIGTERM raises Shutdown in a server."""


def threads(per_thread: int) -> None:
    trace = Trace("storm", "msg")
    children: list[int] = []
    handled = itertools.count()  # next() is one C call: a nested handler cannot take the same seq

    def on_sigchld(_signum: int, _frame: object) -> None:
        trace.event("sigchld", seq=next(handled))
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            trace.conn("child-exit", "child", child=pid)

    go = threading.Event()

    def worker(i: int) -> None:
        go.wait()
        for seq in range(per_thread):
            if seq % 2:
                trace.msg("recv", f"t{i}", NASTY, seq=seq)
            else:
                trace.event("tick", f"t{i}", seq=seq)

    stop = threading.Event()

    def pester() -> None:  # SIGCHLDs with no child behind them: more handler runs
        while not stop.is_set():
            os.kill(os.getpid(), signal.SIGCHLD)
            stop.wait(0.0005)

    signal.signal(signal.SIGCHLD, on_sigchld)
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for w in workers:
        w.start()
    helper = threading.Thread(target=pester)
    helper.start()
    go.set()
    main = 0
    while main < FORKS or any(w.is_alive() for w in workers):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # recorded before it can be reaped
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        children.append(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        trace.event("main", seq=main)  # the handler may run in the middle of this one
        main += 1
    stop.set()
    helper.join()
    for w in workers:
        w.join()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    for pid in children:  # those the handler has not reaped yet
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            continue
        trace.conn("child-exit", "child", child=pid)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # a handler run still pending is dropped now
    summary(threads=THREADS, per_thread=per_thread, main=main, children=children,
            handled=next(handled))


def processes(per_process: int) -> None:
    # Made and used before the forks, as a prefork or forking server's trace is:
    # each child must write its own pid and tid, and never its parent's buffer.
    shared = Trace("storm", "msg")
    shared.event("parent", seq=0)
    buffered = Trace("storm", "msg", autoflush=False)
    buffered.event("pending", seq=0)
    pids = []
    for i in range(PROCESSES):
        pid = os.fork()
        if pid == 0:
            try:
                trace = buffered if i == 0 else shared
                for seq in range(per_process):
                    trace.event("long", f"p{i}", seq=seq, fill=LONG)
                    if seq % 7 == 6:
                        trace.flush()  # the buffered one: several lines, one write, below PIPE_BUF
                trace.flush()
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    buffered.flush()
    summary(processes=PROCESSES, per_process=per_process, pids=pids)


def interrupts(events: int) -> None:
    trace = Trace("storm", "msg", autoflush=False)
    armed = [False]  # raise only inside the loop's try, once per arming

    def on_sigusr1(_signum: int, _frame: object) -> None:
        if armed[0]:
            armed[0] = False
            trace.interrupt(Interrupted())

    signal.signal(signal.SIGUSR1, on_sigusr1)
    stop = threading.Event()

    def pester() -> None:
        while not stop.is_set():
            os.kill(os.getpid(), signal.SIGUSR1)
            stop.wait(0.0002)

    helper = threading.Thread(target=pester)
    helper.start()
    returned, interrupted, deferred = [], 0, 0
    for seq in range(events):
        try:
            armed[0] = True
            trace.event("tick", seq=seq, fill=LONG[: 200 + seq % 1000])
            returned.append(seq)  # recorded (an interrupt just before this line may leave it out)
            if seq % 5 == 4:
                trace.flush()
            armed[0] = False
        except Interrupted as exc:
            interrupted += 1
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            deferred += tb is not None and tb.tb_frame.f_code.co_name == "_raise_deferred"  # inside flush()
    stop.set()
    helper.join()
    trace.flush()
    summary(events=events, returned=returned, interrupted=interrupted, deferred=deferred)


def summary(**what: object) -> None:
    sys.stderr.write(json.dumps(what) + "\n")


if __name__ == "__main__":
    {"threads": threads, "processes": processes, "interrupts": interrupts}[sys.argv[1]](int(sys.argv[2]))
