"""The cooperative models, proven locally: coroutines, gevent and uvloop.

Each serves every client from one thread, and each task gives up the thread
only where it waits.  These tests prove what follows from that (a SLEEP
stalls nobody, a task that never yields stalls everybody, one thread however
many clients, a crash takes all) and where the three differ: under gevent,
BLOCK's time.sleep is patched into a cooperative wait, and so is INCR's
time.sleep(0), which loses updates; uvloop drops connections it cannot
accept where the others back off.  What each model promises is read from its
model.yaml.  Every wait is bounded: on the server's own trace, on replies,
or on a kernel fact from /proc; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import resource
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest
import yaml

from .model_process import SERVICES, ModelProcess, ask, read_line

COOP = ["coroutines", "gevent", "uvloop"]
MANY = 1100  # connections: past select's 1024, and enough to show what grows


@contextmanager
def running(model: str, *args: str, trace: str = "msg") -> Iterator[ModelProcess]:
    proc = ModelProcess(model, *args, trace=trace)
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def expect(model: str) -> dict[str, Any]:
    return yaml.safe_load((SERVICES / model / "model.yaml").read_text())["expect"]


def conn_id(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def has_reply(sock: socket.socket) -> bool:
    poller = select.poll()  # not select(): these tests hold descriptors past 1024
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def is_ev(ev: str, sock: socket.socket, prefix: str = "") -> Callable[[dict[str, Any]], bool]:
    conn = conn_id(sock)
    return lambda e: e["ev"] == ev and e.get("conn") == conn and e.get("data", "").startswith(prefix)


def first(events: list[dict[str, Any]], match: Callable[[dict[str, Any]], bool]) -> int:
    return next(i for i, e in enumerate(events) if match(e))


def wait_until(check: Callable[[], bool], what: str, timeout: float = 5) -> None:
    """A bounded wait on something only /proc can tell (no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        select.select([], [], [], 0.001)  # a millisecond between looks


def unread_by_server(sock: socket.socket) -> int:
    """Bytes of ours the server has not read yet: the receive queue of its end
    of the connection in /proc/net/tcp (addresses in the kernel's hex)."""
    def hexaddr(addr: tuple[str, int]) -> str:
        return "%08X:%04X" % (struct.unpack("=I", socket.inet_aton(addr[0]))[0], addr[1])
    want = (hexaddr(sock.getpeername()[:2]), hexaddr(sock.getsockname()[:2]))
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no server-side socket for {want} in /proc/net/tcp")


def sleeping_in(pid: int, call: str) -> bool:
    """The (only) thread sleeps in this kernel call: nanosleep is a real
    time.sleep, epoll_wait a loop with nothing to do."""
    with open(f"/proc/{pid}/wchan") as f:
        return call in f.read()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files(pid: int) -> list[str]:
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            pass
    return found


def os_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def assert_dropped(sock: socket.socket) -> None:
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass


# -- waiting: a SLEEP is a timer; BLOCK is one unless gevent patched it ------------

@pytest.mark.parametrize("model", COOP)
def test_sleep_stalls_nobody(model: str) -> None:
    assert expect(model)["sleep_stalls_others"] is False
    with running(model) as server, server.connect() as sleeper, server.connect() as other:
        assert ask(sleeper, b"a") == b"a" and ask(other, b"b") == b"b"
        sleeper.sendall(b"SLEEP 1000\nafter the sleep\n")  # pipelined: waits its turn
        wait_until(lambda: unread_by_server(sleeper) == 0, "read of the SLEEP")
        assert ask(other, b"meanwhile") == b"meanwhile"
        assert not has_reply(sleeper), "the other client was answered only after the SLEEP"
        replies = sleeper.makefile("rb")
        assert replies.readline() == b"SLEPT 1000\n"
        assert replies.readline() == b"after the sleep\n"  # in order, after the SLEEP


@pytest.mark.parametrize("model", COOP)
def test_block_stalls_the_others_as_declared(model: str) -> None:
    """coroutines and uvloop: BLOCK's time.sleep is a real blocking call and
    the other client is not even read until it returns.  gevent: time.sleep
    is patched, so the other client is answered while BLOCK waits."""
    stalls = expect(model)["block_stalls_others"]
    with running(model) as server, server.connect() as blocker, server.connect() as other:
        assert ask(blocker, b"a") == b"a" and ask(other, b"b") == b"b"
        blocker.sendall(b"BLOCK 1000\n")
        wait_until(lambda: unread_by_server(blocker) == 0, "read of the BLOCK")
        if stalls:
            wait_until(lambda: sleeping_in(server.pid, "nanosleep"), "thread asleep in BLOCK")
        assert ask(other, b"during the block") == b"during the block"
        if stalls:
            assert has_reply(blocker), "the other client was answered before BLOCKED"
        else:
            assert not has_reply(blocker), "the other client was answered only after BLOCKED"
        assert read_line(blocker) == b"BLOCKED 1000"
        # The server's own trace says the same, whatever the timing.
        server.wait_for(is_ev("send", other, "during"))
        server.wait_for(is_ev("send", blocker, "BLOCKED"))
        events = list(server.events)
        blocked = first(events, is_ev("send", blocker, "BLOCKED"))
        served = first(events, is_ev("send", other, "during"))
        assert (blocked < served) is stalls, events[-6:]


@pytest.mark.parametrize("model", COOP)
def test_work_that_never_yields_stalls_every_other_task(model: str) -> None:
    """CPU-bound WORK has no place to yield, in any of them (gevent cannot
    patch arithmetic): the other client is read only once WORKED has left."""
    assert expect(model)["cpu_parallel"] is False
    with running(model) as server, server.connect() as worker, server.connect() as other:
        assert ask(worker, b"a") == b"a" and ask(other, b"b") == b"b"
        worker.sendall(b"WORK 3000000\n")  # a few hundred milliseconds of arithmetic
        wait_until(lambda: unread_by_server(worker) == 0, "read of the WORK")
        assert ask(other, b"echo") == b"echo"
        assert has_reply(worker), "the other client was answered while WORK ran"
        assert read_line(worker).startswith(b"WORKED 3000000 ")
        server.wait_for(is_ev("recv", other, "echo"))
        events = list(server.events)
        assert first(events, is_ev("send", worker, "WORKED")) < first(events, is_ev("recv", other, "echo"))


# -- one thread for every client ---------------------------------------------------

@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Room for MANY sockets here and in the server (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * MANY + 200
    assert hard == resource.RLIM_INFINITY or hard >= need, \
        f"these tests need an open-file hard limit of {need} (ulimit -Hn is {hard})"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("model", COOP)
def test_one_thread_holds_every_waiting_client(model: str, many_descriptors: None) -> None:
    """1,100 clients each ask for SLEEP 1000 at once.  While every one of them
    is waiting, a STATS finds them all open in a single OS thread (descriptors
    past 1024 included); then every one is answered."""
    assert expect(model)["thread_count"] == 1 and expect(model)["fd_limit"] is None
    with running(model, "--backlog", "2048", trace="conn") as server:
        socks: list[socket.socket] = []
        try:
            for _ in range(MANY):
                socks.append(server.connect(timeout=15))
            for s in socks:
                s.sendall(b"SLEEP 1000\n")
            with server.connect() as probe:  # accepted after every one of them
                stats = json.loads(ask(probe, b"STATS"))
            pending = sum(1 for s in socks if not has_reply(s))
            assert stats["connections"] == MANY + 1 and stats["threads"] == 1, stats
            assert os_threads(server.pid) == 1
            assert pending > 0, "every SLEEP had ended before STATS was answered"
            answered = replies(socks, timeout=30)
            assert answered == {b"SLEPT 1000": MANY}
            assert os_threads(server.pid) == 1
        finally:
            for s in socks:
                s.close()


def replies(socks: list[socket.socket], timeout: float) -> dict[bytes, int]:
    """One reply line from each socket: how many of each."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ, b"")
    seen: dict[bytes, int] = {}
    deadline, left = time.monotonic() + timeout, len(socks)
    while left:
        wait = deadline - time.monotonic()
        assert wait > 0, f"{left} of {len(socks)} had no reply within {timeout}s; so far {seen}"
        for key, _ in sel.select(wait):
            buf = key.data + key.fileobj.recv(4096)
            if buf.endswith(b"\n") or not buf:
                seen[buf.strip()] = seen.get(buf.strip(), 0) + 1
                sel.unregister(key.fileobj)
                left -= 1
            else:
                sel.modify(key.fileobj, selectors.EVENT_READ, buf)
    sel.close()
    return seen


# -- shared state: no preemption, unless a patched call yields ---------------------

@pytest.mark.parametrize("model", COOP)
def test_unlocked_increments_as_declared(model: str) -> None:
    """coroutines, uvloop: INCR never yields between its read and its write,
    so two clients' increments all count.  gevent: its time.sleep(0) is a
    switch to the hub, the other greenlet runs in between, and updates are lost."""
    lost = expect(model)["lost_updates"]
    with running(model, trace="conn") as server, server.connect() as a, server.connect() as b:
        a.sendall(b"INCR 10000\n")
        b.sendall(b"INCR 10000\n")
        counts = sorted(int(read_line(s).split()[1]) for s in (a, b))
        final = json.loads(ask(a, b"STATS"))["counter"]
    assert final == counts[1]
    if lost:
        assert final < 20_000, f"no update lost: {counts}"
    else:
        assert counts == [10_000, 20_000]


# -- idle: the scheduler sleeps in the kernel -------------------------------------

@pytest.mark.parametrize("model", COOP)
def test_idle_while_a_timer_runs(model: str) -> None:
    """While the only client waits for its SLEEP, nothing spins."""
    assert expect(model)["idle_cpu"] == "idle"
    with running(model, trace="conn") as server, server.connect() as sock:
        assert ask(sock, b"warm") == b"warm"
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        assert ask(sock, b"SLEEP 500") == b"SLEPT 500"
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
        assert cpu < 0.25 * wall, f"{cpu:.2f}s of CPU in {wall:.2f}s"


def test_hand_written_scheduler_meets_eagain_before_each_wait() -> None:
    """coroutines tries recv() first and parks on EAGAIN.  A client that lets
    the server go back to epoll_wait before each request (as the would-block
    check's interval client does) meets one EAGAIN and one wake-up a request."""
    assert expect("coroutines")["wouldblock_counter"] is True
    with running("coroutines", trace="conn") as server, server.connect() as sock:
        before = json.loads(ask(sock, b"STATS"))
        for i in range(25):
            wait_until(lambda: sleeping_in(server.pid, "epoll_wait"), "loop back in epoll_wait")
            assert ask(sock, b"n %d" % i) == b"n %d" % i
        after = json.loads(ask(sock, b"STATS"))
    assert after["wouldblock"] - before["wouldblock"] >= 25
    assert 25 <= after["wakeups"] - before["wakeups"] <= 30


# -- one process: a crash takes every connection ----------------------------------

@pytest.mark.parametrize("model", COOP)
def test_crash_takes_every_connection(model: str) -> None:
    assert expect(model)["crash_takes"] == "all"
    with running(model, trace="conn") as server, server.connect() as crasher, server.connect() as other:
        assert ask(other, b"hi") == b"hi"
        crasher.sendall(b"CRASH\n")
        assert server.proc.wait(10) == -signal.SIGSEGV
        assert_dropped(other)
        server.wait_for(lambda e: e["ev"] == "crash" and e.get("conn") == conn_id(crasher))


@pytest.mark.parametrize("model", COOP)
def test_raise_takes_only_its_connection(model: str) -> None:
    assert expect(model)["raise_takes"] == "connection"
    with running(model, trace="conn") as server, server.connect() as raiser, server.connect() as other:
        assert ask(other, b"hi") == b"hi"
        raiser.sendall(b"RAISE\n")
        assert_dropped(raiser)
        server.wait_for(lambda e: e["ev"] == "close" and e.get("conn") == conn_id(raiser)
                        and e["reason"] == "raise")
        assert ask(other, b"still here") == b"still here"


# -- stopping: SIGTERM wherever the thread is -------------------------------------

@pytest.mark.parametrize("model", COOP)
@pytest.mark.parametrize("busy", ["idle", "SLEEP 5000", "BLOCK 300", "WORK 2000000"])
def test_sigterm_stops_gracefully(model: str, busy: str) -> None:
    """SIGTERM while the thread is idle, waits for a timer, is inside a blocking
    call or computes: the server stops with exit 0 and a stop event, at once or
    once the call that holds the thread returns (asyncio's and gevent's loops
    take the signal themselves, so they see it only at the next turn)."""
    with running(model, trace="conn") as server, server.connect() as client:
        assert ask(client, b"hi") == b"hi"
        if busy != "idle":
            client.sendall(busy.encode() + b"\n")
            wait_until(lambda: unread_by_server(client) == 0, f"read of {busy}")
        assert server.stop(signal.SIGTERM) == 0
        stop = server.wait_for(lambda e: e["ev"] == "stop")
        assert stop["reason"] == "SIGTERM"
        if model != "gevent":  # a greenlet ends with the process, as a thread does: unlogged
            server.wait_for(lambda e: e["ev"] == "close" and e.get("reason") == "shutdown")


# -- out of descriptors: back off (coroutines, gevent) or drop (uvloop) ------------

@pytest.mark.parametrize("model", COOP)
def test_out_of_descriptors(model: str) -> None:
    with running(model, trace="conn") as server:
        with server.connect() as warm:  # every lazily opened descriptor is open now
            assert ask(warm, b"warm") == b"warm"
        server.wait_for(lambda e: e["ev"] == "close")
        limits = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
        used = {int(fd) for fd in os.listdir(f"/proc/{server.pid}/fd")}
        lowest_free = min(set(range(len(used) + 1)) - used)
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        emfile = lambda e: e["ev"] == "error" and e.get("errno") == "EMFILE"  # noqa: E731
        with server.connect() as sock:
            sock.sendall(b"waiting\n")
            if model == "uvloop":
                # libuv frees its reserve descriptor, accepts and closes until
                # EAGAIN, then takes a reserve again (it opens "/"): dropped, unlogged.
                assert_dropped(sock)
                wait_until(lambda: "/" in open_files(server.pid), "libuv's reserve descriptor back")
                assert not any(emfile(e) for e in server.events)
            else:
                first_error = server.wait_for(emfile)
                second = server.wait_for(emfile, count=2)  # it tried again...
                assert second["t"] - first_error["t"] >= 0.09  # ...after the back-off
            resource.prlimit(server.pid, resource.RLIMIT_NOFILE, limits)
            if model != "uvloop":
                assert read_line(sock) == b"waiting"  # accepted after all
        with server.connect() as later:
            assert ask(later, b"served") == b"served"


# -- where the library is missing ------------------------------------------------

@pytest.mark.parametrize("model", ["gevent", "uvloop"])
def test_missing_library_is_one_line_and_exit_2(model: str) -> None:
    """As on the pulled python:3.11-slim base: the import fails, the server says
    what to do in one line and exits 2."""
    hide = (f"import sys, runpy; sys.modules[{model!r}] = None; "  # None: any import of it fails
            f"runpy.run_path({str(SERVICES / model / 'server.py')!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", hide, "--port", "0"], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, PYTHONPATH=str(SERVICES)))
    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "iolab/base:bookworm" in lines[0] and f"pip install {model}" in lines[0], lines


# -- uvloop is the asyncio model on another loop -----------------------------------

def test_uvloop_runs_the_asyncio_code_on_libuv() -> None:
    with running("uvloop", trace="conn") as server, server.connect() as sock:
        start = server.wait_for(lambda e: e["ev"] == "start")
        assert start["model"] == "uvloop"
        assert json.loads(ask(sock, b"STATS"))["model"] == "uvloop"
        with open(f"/proc/{server.pid}/maps") as maps:
            mapped = maps.read()
        assert "/uvloop/loop." in mapped  # the compiled loop is in the process
