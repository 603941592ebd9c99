"""What sets forking, prefork, threadpool and asyncio apart, proven locally.

Each test starts a model as a subprocess (see model_process.py) and proves
its claim from the model's own trace, from /proc, and from the order in
which replies arrive; waits are bounded and fail with the trace tail.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from .model_process import ModelProcess, ask, read_line


def children_of(pid: int) -> dict[int, str]:
    """Child pid -> state (R, S, Z for a zombie, ...), from /proc/*/stat."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found[int(stat.parent.name)] = fields[0]
    return found


@contextmanager
def running(model: str, *args: str, trace: str = "conn") -> Iterator[ModelProcess]:
    """A model, stopped with SIGTERM at the end; no descendant outlives it."""
    proc = ModelProcess(model, *args, trace=trace)
    try:
        yield proc
    finally:
        kids = set(children_of(proc.pid))
        try:
            proc.stop(signal.SIGTERM)
        finally:
            for kid in kids:  # a graceful stop reaped them; this is the safety net
                try:
                    os.kill(kid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def assert_dropped(sock: socket.socket) -> None:
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass


def has_reply(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def conn_id(sock: socket.socket) -> str:
    """The server's name for this client's connection (its peer address)."""
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


Match = Callable[[dict[str, Any]], bool]


def index(events: list[dict[str, Any]], match: Match) -> int:
    return next(i for i, e in enumerate(events) if match(e))


def is_ev(ev: str, sock: socket.socket, prefix: str | None = None) -> Match:
    """Matches event ``ev`` on this client's connection (msg events: whose
    data starts with ``prefix``)."""
    conn = conn_id(sock)
    return lambda e: (e["ev"] == ev and e.get("conn") == conn
                      and (prefix is None or e.get("data", "").startswith(prefix)))


# -- forking ----------------------------------------------------------------

def test_forking_crash_kills_only_its_child_and_every_child_is_reaped() -> None:
    with running("forking") as server:
        with server.connect() as a, server.connect() as b:
            pid_a = json.loads(ask(a, b"STATS"))["pid"]
            pid_b = json.loads(ask(b, b"STATS"))["pid"]
            assert len({pid_a, pid_b, server.pid}) == 3  # a process per connection
            a.sendall(b"CRASH\n")
            assert_dropped(a)
            server.wait_for(lambda e: e["ev"] == "child-exit" and e["child"] == pid_a
                            and e.get("signal") == "SIGSEGV")
            assert ask(b, b"still served") == b"still served"
            with server.connect() as c:
                assert ask(c, b"new client") == b"new client"
        server.wait_for(lambda e: e["ev"] == "child-exit", count=3)
        assert children_of(server.pid) == {}  # all reaped: no zombie, no stray
        assert server.proc.poll() is None


def test_forking_reaps_children_that_exit_together() -> None:
    with running("forking") as server:
        socks = [server.connect() for _ in range(20)]
        try:
            for s in socks:
                assert ask(s, b"hi") == b"hi"
            assert len(children_of(server.pid)) == 20
        finally:
            for s in socks:
                s.close()
        # SIGCHLDs coalesce; the reaper must still collect every child
        server.wait_for(lambda e: e["ev"] == "child-exit" and e.get("status") == 0, count=20)
        assert children_of(server.pid) == {}


def test_forking_sigterm_ends_the_children_and_exits_0() -> None:
    with running("forking") as server:
        with server.connect() as a:
            child = json.loads(ask(a, b"STATS"))["pid"]
            assert server.stop(signal.SIGTERM) == 0
            assert_dropped(a)
        server.wait_for(lambda e: e["ev"] == "child-exit" and e["child"] == child
                        and e.get("signal") == "SIGTERM")
        assert not Path(f"/proc/{child}").exists()


# -- prefork ----------------------------------------------------------------

def test_prefork_crash_kills_one_worker_and_the_master_replaces_it() -> None:
    with running("prefork", "--workers", "3") as server:
        server.wait_for(lambda e: e["ev"] == "worker-start", count=3)
        pool = set(children_of(server.pid))
        assert len(pool) == 3
        with server.connect() as a, server.connect() as b:
            pid_a = json.loads(ask(a, b"STATS"))["pid"]
            pid_b = json.loads(ask(b, b"STATS"))["pid"]
            assert pid_a != pid_b and {pid_a, pid_b} <= pool
            a.sendall(b"CRASH\n")
            assert_dropped(a)
            server.wait_for(lambda e: e["ev"] == "worker-exit" and e["worker"] == pid_a
                            and e.get("signal") == "SIGSEGV")
            new = server.wait_for(lambda e: e["ev"] == "worker-start", count=4)["worker"]
            assert json.loads(ask(b, b"STATS"))["pid"] == pid_b  # the others serve on
            assert set(children_of(server.pid)) == pool - {pid_a} | {new}
        assert server.stop(signal.SIGTERM) == 0
        server.wait_for(lambda e: e["ev"] == "worker-exit" and e.get("signal") == "SIGTERM", count=3)
        assert not any(Path(f"/proc/{pid}").exists() for pid in pool | {new})


# -- threadpool ---------------------------------------------------------------

def test_threadpool_third_client_waits_for_a_free_thread() -> None:
    with running("threadpool", "--workers", "2", trace="msg") as server:
        with server.connect() as c1, server.connect() as c2, server.connect() as c3:
            assert ask(c1, b"one") == b"one"
            assert ask(c2, b"two") == b"two"
            c3.sendall(b"three\n")
            server.wait_for(is_ev("accept", c3))  # accepted, and queued
            assert ask(c1, b"one again") == b"one again"  # asked after c3, answered first
            assert not has_reply(c3)
            c1_closed, c3_read = is_ev("close", c1), is_ev("recv", c3)
            c1.close()
            assert read_line(c3) == b"three"
            server.wait_for(c3_read)
            events = list(server.events)
            closed, served = index(events, c1_closed), index(events, c3_read)
            assert closed < served  # nobody read c3 until c1's thread was free ...
            assert events[closed]["tid"] == events[served]["tid"]  # ... and it is that thread


def test_threadpool_thread_count_does_not_grow_with_clients() -> None:
    with running("threadpool", "--workers", "2") as server:
        socks = [server.connect() for _ in range(8)]
        try:
            assert ask(socks[0], b"hi") == b"hi"
            server.wait_for(lambda e: e["ev"] == "accept", count=8)
            assert len(os.listdir(f"/proc/{server.pid}/task")) == 3  # main + 2
            stats = json.loads(ask(socks[0], b"STATS"))
            assert stats["threads"] == 3 and stats["connections"] <= 2  # the rest are queued
        finally:
            for s in socks:
                s.close()


# -- asyncio ------------------------------------------------------------------

def test_asyncio_sleep_is_a_timer_but_block_stalls_the_loop() -> None:
    with running("asyncio", trace="msg") as server:
        with server.connect() as a, server.connect() as b:
            assert json.loads(ask(b, b"STATS"))["threads"] == 1
            # SLEEP: b is read and answered while a's request waits on its timer
            a.sendall(b"SLEEP 300\n")
            server.wait_for(is_ev("recv", a, "SLEEP"))
            assert ask(b, b"meanwhile") == b"meanwhile"
            assert not has_reply(a)
            assert read_line(a) == b"SLEPT 300"
            # BLOCK: the loop is stuck; b is not even read until a is answered
            a.sendall(b"BLOCK 300\n")
            server.wait_for(is_ev("recv", a, "BLOCK"))
            assert ask(b, b"stalled") == b"stalled"
            server.wait_for(is_ev("recv", b, "stalled"))
            events = list(server.events)
            assert index(events, is_ev("send", a, "BLOCKED")) < index(events, is_ev("recv", b, "stalled"))


def test_asyncio_sigterm_during_block_still_stops_the_server() -> None:
    """A signal that lands while a coroutine runs must not be lost in it."""
    with running("asyncio", trace="msg") as server:
        with server.connect() as a:
            a.sendall(b"BLOCK 300\n")
            server.wait_for(is_ev("recv", a, "BLOCK"))
            assert server.stop(signal.SIGTERM) == 0
            assert read_line(a) == b"BLOCKED 300"  # the loop was stuck: it stops after
        server.wait_for(lambda e: e["ev"] == "stop" and e["reason"] == "SIGTERM")
        server.wait_for(lambda e: e["ev"] == "close" and e["reason"] == "shutdown")


# -- what a crash takes, what INCR counts, accept under EMFILE -----------------

@pytest.mark.parametrize("model", ["threadpool", "asyncio"])
def test_crash_kills_the_whole_server(model: str) -> None:
    with running(model) as server:
        with server.connect() as a, server.connect() as b:
            assert ask(b, b"hi") == b"hi"
            a.sendall(b"CRASH\n")
            assert server.proc.wait(10) == -signal.SIGSEGV
            assert_dropped(b)
        server.wait_for(lambda e: e["ev"] == "crash")


@pytest.mark.parametrize("model, totals", [("forking", {1000}), ("asyncio", {1000, 2000})])
def test_incr_counter_belongs_to(model: str, totals: set[int]) -> None:
    """forking: each connection counts in its own process.  asyncio: one
    counter, and no update is lost (no await between read and write)."""
    with running(model) as server:
        with server.connect() as a, server.connect() as b:
            a.sendall(b"INCR 1000\n")
            b.sendall(b"INCR 1000\n")
            seen = {int(read_line(s).split()[1]) for s in (a, b)}
            assert seen == totals


@pytest.mark.parametrize("model", ["forking", "prefork", "threadpool", "asyncio"])
def test_accept_survives_running_out_of_descriptors(model: str) -> None:
    pool = ("--workers", "1") if model in ("prefork", "threadpool") else ()
    with running(model, *pool) as server:
        if model == "prefork":
            server.wait_for(lambda e: e["ev"] == "worker-start")
        acceptor = next(iter(children_of(server.pid))) if model == "prefork" else server.pid
        limits = resource.prlimit(acceptor, resource.RLIMIT_NOFILE)
        used = {int(fd) for fd in os.listdir(f"/proc/{acceptor}/fd")}
        lowest_free = min(set(range(len(used) + 1)) - used)
        resource.prlimit(acceptor, resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        # A blocking accept() takes its descriptor before it sleeps, so the one
        # in progress may still succeed: this client lets it, the next one fails.
        server.connect().close()
        server.wait_for(lambda e: e["ev"] == "error" and e.get("kind") == "accept"
                        and e.get("errno") == "EMFILE" and e["pid"] == acceptor and "backoff" in e)
        with server.connect() as c:
            c.sendall(b"waiting\n")
            resource.prlimit(acceptor, resource.RLIMIT_NOFILE, limits)
            assert read_line(c) == b"waiting"  # it backed off and went on
