"""What the five readiness loops do, proven locally from replies, STATS and traces.

busypoll, select, poll, epoll and epoll-edge all serve every client from one
thread.  These tests prove what sets them apart from the thread and process
models (a SLEEP is a timer, a BLOCK stops everyone, one thread however many
clients) and from each other (busypoll spins, select stops at descriptor
1024, edge-triggered epoll needs fewer notifications and meets EAGAIN).
Every wait is bounded: on the server's own events (failing with the trace
tail), or on a kernel fact read from /proc under a deadline.  Nothing sleeps
to synchronise.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import select
import selectors
import signal
import socket
import struct
import termios
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import pytest
import yaml

from ..conftest import unavailable
from .model_process import SERVICES, ModelProcess, ask, read_exact, read_line

LOOPS = ["busypoll", "select", "poll", "epoll", "epoll-edge"]
MANY = 1100  # connections: past select's FD_SETSIZE of 1024


@contextmanager
def running(model: str, *args: str, trace: str = "conn") -> Iterator[ModelProcess]:
    proc = ModelProcess(model, *args, trace=trace)
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def stats(sock: socket.socket) -> dict:
    return json.loads(ask(sock, b"STATS"))


def has_reply(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def conn_id(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def in_nanosleep(pid: int) -> bool:
    """True while the process's (only) thread sleeps in the kernel's
    nanosleep, where time.sleep() puts it: a BLOCK, never a readiness wait."""
    with open(f"/proc/{pid}/wchan") as f:
        return "nanosleep" in f.read()


def wait_until(check: Callable[[], bool], timeout: float = 5, what: str = "condition") -> None:
    """A bounded wait on something only /proc can tell (no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        select.select([], [], [], 0.001)  # a millisecond between looks


def read_by_server(server: ModelProcess, sock: socket.socket, prefix: str) -> None:
    """Wait for the server's own recv event of ``prefix`` on this connection
    (msg-level trace; event loops flush it at the start of their next turn)."""
    conn = conn_id(sock)
    server.wait_for(lambda e: e["ev"] == "recv" and e.get("conn") == conn
                    and e.get("data", "").startswith(prefix))


def unread_by_server(server: ModelProcess, sock: socket.socket) -> int:
    """Bytes the server has not read from this client yet: the rx_queue of its
    end of the connection in /proc/net/tcp (addresses in the kernel's hex)."""
    def hexaddr(addr: tuple[str, int]) -> str:
        return "%08X:%04X" % (struct.unpack("=I", socket.inet_aton(addr[0]))[0], addr[1])
    want = (hexaddr(sock.getpeername()[:2]), hexaddr(sock.getsockname()[:2]))
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"{server.model}: no server-side socket for {want} in /proc/net/tcp")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def expect(model: str) -> dict:
    return yaml.safe_load((SERVICES / model / "model.yaml").read_text())["expect"]


# -- SLEEP is a timer, BLOCK is a wall --------------------------------------------

@pytest.mark.parametrize("model", LOOPS)
def test_sleep_does_not_delay_another_client(model: str) -> None:
    with running(model, trace="msg") as server, server.connect() as sleeper, \
            server.connect() as other:
        assert ask(sleeper, b"a") == b"a" and ask(other, b"b") == b"b"
        sleeper.sendall(b"SLEEP 300\nafter the sleep\n")  # pipelined: must wait its turn
        read_by_server(server, sleeper, "SLEEP 300")  # read, and the loop has turned since
        other.sendall(b"meanwhile\n")
        assert read_line(other) == b"meanwhile"
        assert not has_reply(sleeper), "the other client was answered only after the SLEEP"
        replies = sleeper.makefile("rb")
        assert replies.readline() == b"SLEPT 300\n"
        assert replies.readline() == b"after the sleep\n"  # in order, after the SLEEP
        assert stats(other)["threads"] == 1


@pytest.mark.parametrize("model", LOOPS)
def test_block_delays_every_other_client(model: str) -> None:
    with running(model, trace="msg") as server, server.connect() as blocker, \
            server.connect() as other:
        assert ask(blocker, b"a") == b"a" and ask(other, b"b") == b"b"
        blocker.sendall(b"BLOCK 300\n")
        wait_until(lambda: in_nanosleep(server.pid), what="BLOCK in progress")
        began = time.monotonic()
        other.sendall(b"stuck behind it\n")
        assert read_line(other) == b"stuck behind it"
        waited = time.monotonic() - began
        assert has_reply(blocker), "the other client was answered before BLOCKED"
        assert read_line(blocker) == b"BLOCKED 300"
        assert waited >= 0.1, f"answered after {waited:.3f}s: the BLOCK did not hold it up"
        # The server's own trace says the same: BLOCKED left before the other reply.
        server.wait_for(lambda e: e["ev"] == "send" and e.get("conn") == conn_id(other), count=2)
        sends = [e for e in server.events if e["ev"] == "send"]
        order = [e["conn"] for e in sends if e.get("data", "").strip() in ("BLOCKED 300", "stuck behind it")]
        assert order == [conn_id(blocker), conn_id(other)]


@pytest.mark.parametrize("model", LOOPS)
def test_one_thread_serves_every_client(model: str) -> None:
    with running(model) as server:
        socks = [server.connect() for _ in range(50)]
        try:
            for i, s in enumerate(socks):
                assert ask(s, b"client %d" % i) == b"client %d" % i
            figures = stats(socks[0])
            assert figures["threads"] == 1
            assert figures["connections"] == 50
            assert {"wakeups", "events", "wouldblock"} <= figures.keys()
            # INCR yields the GIL between its read and its write, but one thread
            # runs each request to its end before the next: no update is lost.
            socks[1].sendall(b"INCR 1000\n")
            socks[2].sendall(b"INCR 1000\n")
            assert {read_line(socks[1]), read_line(socks[2])} == {b"COUNT 1000", b"COUNT 2000"}
        finally:
            for s in socks:
                s.close()


# -- idle: busypoll spins, the others sleep in the kernel ---------------------------

@pytest.mark.parametrize("model", LOOPS)
def test_idle_loop_spins_only_without_a_readiness_api(model: str) -> None:
    """While the only client waits for its own SLEEP, nobody sends anything:
    busypoll keeps turning (wakeups, wouldblock, CPU), the others wait once."""
    with running(model) as server, server.connect() as sock:
        before, cpu0, t0 = stats(sock), cpu_seconds(server.pid), time.monotonic()
        assert ask(sock, b"SLEEP 300") == b"SLEPT 300"  # the server's timer, not ours
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
        after = stats(sock)
        turns = after["wakeups"] - before["wakeups"]
        eagain = after["wouldblock"] - before["wouldblock"]
        if expect(model)["idle_cpu"] == "busy":
            assert turns > 10_000 and eagain > 10_000, (turns, eagain)
            assert cpu > 0.25 * wall, f"{cpu:.2f}s of CPU in {wall:.2f}s"
        else:
            assert turns <= 10 and eagain <= 10, (turns, eagain)  # a few: request, timer, reply
            assert cpu < 0.25 * wall, f"{cpu:.2f}s of CPU in {wall:.2f}s"


# -- back-pressure: a client that never reads is held back --------------------

@pytest.mark.parametrize("model", LOOPS)
def test_client_that_never_reads_is_held_back(model: str) -> None:
    """Echo lines pushed without reading a reply: once the outbox is full the
    server stops reading that client, so its bytes wait in the kernel and the
    client's send() blocks, while the loop goes on serving others."""
    chunk = (b"x" * 63 + b"\n") * 1024
    stream = memoryview(chunk * 2)  # stream[k:k + len(chunk)]: the bytes from offset k on
    with running(model) as server, server.connect(timeout=20) as flood, server.connect() as other:
        flood.setblocking(False)
        pushed, deadline = 0, time.monotonic() + 10
        while True:
            try:
                while True:
                    offset = pushed % len(chunk)
                    pushed += flood.send(stream[offset:offset + len(chunk)])
            except BlockingIOError:  # our send buffer is full: is the server holding back?
                pass
            assert pushed < 64 << 20, f"{pushed >> 20} MB taken: the server reads without bound"
            assert time.monotonic() < deadline, f"never held back after {pushed >> 20} MB"
            unread = unread_by_server(server, flood)
            assert ask(other, b"still serving") == b"still serving"  # the loop turned...
            if unread and unread_by_server(server, flood) == unread:  # ...and did not read it
                break
            select.select([], [flood], [], 0.01)  # a moment for the server to take some
        assert rss_mb(server.pid) < 64, f"{rss_mb(server.pid):.0f} MB resident"
        # Now read: the server drains its outbox, reads again, and every line comes back.
        flood.setblocking(True)
        offset, rest = pushed % len(chunk), -pushed % 64  # finish the last, partial line
        finisher = threading.Thread(target=flood.sendall, args=(chunk[offset:offset + rest],))
        finisher.start()
        total = pushed + rest
        assert read_exact(flood, total) == (chunk * (total // len(chunk) + 1))[:total]
        finisher.join(10)


# -- level- against edge-triggered epoll ----------------------------------------

def flood(model: str) -> tuple[int, int]:
    """2 MB of pipelined lines written at once on one connection: how many
    readiness notifications it took, and how many EAGAINs a second client's
    STATS finds after it (the one ending its accept, and any that ended the
    first client's last drain)."""
    lines = b"".join(b"%07d" % i + b"." * 56 + b"\n" for i in range(2_000_000 // 64))
    with running(model) as server, server.connect(timeout=20) as sock:
        before = stats(sock)
        sender = threading.Thread(target=sock.sendall, args=(lines,))
        sender.start()
        assert read_exact(sock, len(lines)) == lines
        sender.join(20)
        after = stats(sock)
        with server.connect() as second:  # served once the loop is back in epoll_wait
            later = stats(second)
        return after["events"] - before["events"], later["wouldblock"] - after["wouldblock"]


def test_level_triggered_epoll_needs_more_events_than_edge_triggered() -> None:
    level_events, level_eagain = flood("epoll")
    edge_events, edge_eagain = flood("epoll-edge")
    # Level: one 64 kB recv per notification, so at least 2 MB / 64 kB of them.
    assert level_events >= 2_000_000 // 65536, level_events
    # Edge: each notification is drained to EAGAIN, so a handful does it all.
    assert edge_events < level_events, (edge_events, level_events)
    # Edge must end every drain in EAGAIN (the first client's, here); level
    # read once per report and never asked a socket that had nothing.
    assert edge_eagain > level_eagain, (edge_eagain, level_eagain)


# -- descriptors: select stops at FD_SETSIZE, poll and epoll do not ---------------

@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Room for MANY sockets here and in the server (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * MANY + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        unavailable(f"RLIMIT_NOFILE hard limit {hard} is below {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def answer_all(socks: list[socket.socket], timeout: float = 15) -> tuple[list[socket.socket], int]:
    """Send one line on each socket; return those answered, and how many were closed."""
    for i, s in enumerate(socks):
        s.sendall(b"client %d\n" % i)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ, b"")
    answered: list[socket.socket] = []
    closed = 0
    deadline = time.monotonic() + timeout
    while len(answered) + closed < len(socks):
        left = deadline - time.monotonic()
        assert left > 0, f"{len(answered)} answered, {closed} closed of {len(socks)} within {timeout}s"
        for key, _ in sel.select(left):
            try:
                chunk = key.fileobj.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed += 1
            elif not (key.data + chunk).endswith(b"\n"):
                sel.modify(key.fileobj, selectors.EVENT_READ, key.data + chunk)
                continue
            else:
                answered.append(key.fileobj)
            sel.unregister(key.fileobj)
    sel.close()
    return answered, closed


@pytest.mark.parametrize("model", ["select", "poll", "epoll"])
def test_descriptors_past_1024(model: str, many_descriptors: None) -> None:
    fd_limit = expect(model)["fd_limit"]
    with running(model, "--backlog", "2048") as server:
        start = server.wait_for(lambda e: e["ev"] == "start")
        assert start["nofile"] >= MANY + 100
        socks: list[socket.socket] = []
        try:
            for _ in range(MANY):
                socks.append(server.connect(timeout=15))
            answered, closed = answer_all(socks)
            if fd_limit is None:
                assert (len(answered), closed) == (MANY, 0)
                return
            # select() refused the high descriptors with its documented ValueError...
            error = server.wait_for(lambda e: e["ev"] == "error" and e.get("kind") == "fd_setsize")
            assert "filedescriptor out of range in select()" in error["detail"]
            assert error["fds"] and min(error["fds"]) >= fd_limit
            # ...those connections were closed, and every low one is still served.
            assert closed > 0 and len(answered) + closed == MANY
            assert len(answered) >= fd_limit - 16  # all but stdio, the listener and such
            server.wait_for(lambda e: e["ev"] == "close" and e.get("reason") == "fd_setsize", count=closed)
            for sock in answered[::100]:  # after the error, the low descriptors are still served
                assert ask(sock, b"still served") == b"still served"
        finally:
            for s in socks:
                s.close()


# -- running out of descriptors: back off, then accept again ---------------------

@pytest.mark.parametrize("model", LOOPS)
def test_accept_backs_off_on_emfile_then_serves(model: str) -> None:
    with running(model) as server:
        limits = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
        used = {int(fd) for fd in os.listdir(f"/proc/{server.pid}/fd")}
        lowest_free = min(set(range(len(used) + 1)) - used)
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            emfile = lambda e: e["ev"] == "error" and e.get("errno") == "EMFILE"  # noqa: E731
            first = server.wait_for(emfile)
            second = server.wait_for(emfile, count=2)  # it tried again...
            assert second["t"] - first["t"] >= 0.09  # ...after the back-off, not at once
            resource.prlimit(server.pid, resource.RLIMIT_NOFILE, limits)
            assert ask(sock, b"served after all") == b"served after all"
        assert sum(1 for e in server.events if emfile(e)) < 50  # it did not spin


# -- SIGTERM: every open connection is closed and logged ----------------------------

@pytest.mark.parametrize("model", LOOPS)
def test_sigterm_closes_open_connections(model: str) -> None:
    with running(model) as server, server.connect() as idle, server.connect() as sleeper:
        assert ask(idle, b"hi") == b"hi"
        sleeper.sendall(b"SLEEP 5000\n")
        server.wait_for(lambda e: e["ev"] == "accept", count=2)
        assert stats(idle)["connections"] == 2
        assert server.stop(signal.SIGTERM) == 0
        server.wait_for(lambda e: e["ev"] == "close" and e.get("reason") == "shutdown", count=2)
        stop = server.wait_for(lambda e: e["ev"] == "stop")
        assert stop["reason"] == "SIGTERM"
        assert idle.recv(1) == b""


def waker(pid: int) -> int:
    """The write end of the server's signal waker: the one pipe both of whose
    ends the process holds (its stdout and stderr are pipes with one end)."""
    ends: dict[str, list[int]] = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{name}")
        if target.startswith("pipe:"):
            ends.setdefault(target, []).append(int(name))
    both = [fds for fds in ends.values() if len(fds) == 2]
    assert len(both) == 1, f"pipes held at both ends: {ends}"
    for fd in both[0]:
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            flags = int(f.read().split("flags:")[1].split()[0], 8)
        if flags & os.O_ACCMODE == os.O_WRONLY:
            return fd
    raise AssertionError(f"no write end among {both[0]}")


def unread(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


@pytest.mark.parametrize("model", ["select", "poll", "epoll", "epoll-edge", "coroutines"])
def test_a_signal_wakes_the_readiness_wait(model: str) -> None:
    """A signal that lands just before select/poll/epoll_wait starts would
    not interrupt it: Python runs its handler between bytecodes, and the
    loop might then sleep on with a SIGTERM pending (a CI run once waited
    10 s for coroutines to stop).  The C handler also writes a byte to a
    pipe the loop watches, so the wait returns.  Shown here by writing that
    byte ourselves, with the loop idle in its wait: the loop drains it (a
    loop that did not watch the pipe would leave it there), and serves on."""
    with running(model) as server, server.connect() as sock:
        assert ask(sock, b"hi") == b"hi"
        with open(f"/proc/{server.pid}/fd/{waker(server.pid)}", "wb", buffering=0) as pipe:
            pipe.write(b"\x0f")
            wait_until(lambda: unread(pipe.fileno()) == 0, what=f"{model} draining its waker")
        assert ask(sock, b"still") == b"still"
        assert server.stop(signal.SIGTERM) == 0


# -- one process: a crash takes every connection with it ------------------------

@pytest.mark.parametrize("model", LOOPS)
def test_crash_takes_every_connection(model: str) -> None:
    assert expect(model)["crash_takes"] == "all"
    with running(model) as server, server.connect() as crasher, server.connect() as other:
        assert ask(other, b"hi") == b"hi"
        crasher.sendall(b"CRASH\n")
        assert server.proc.wait(10) == -signal.SIGSEGV
        try:
            assert other.recv(1) == b""
        except ConnectionResetError:
            pass
        # The trace is buffered in a loop; the crash event was flushed before dying.
        server.wait_for(lambda e: e["ev"] == "crash" and e.get("conn") == conn_id(crasher))

