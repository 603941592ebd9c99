"""The uring model, proven locally: completions, not readiness.

What it shares with the readiness loops (one thread; a SLEEP is a timer, a
BLOCK stops everyone; back-pressure; the waker; EMFILE back-off; SIGTERM and
CRASH) is proven with the same helpers as test_loops_local.py.  What sets it
apart: it submits operations and reaps completions, one io_uring_enter per
loop turn, so under load it makes fewer system calls than it sends replies;
it holds no buffer per idle connection; and where io_uring is refused (a
seccomp filter, as Docker 25+'s default profile is) it starts nothing and
says why in one line, exit 2.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from ..conftest import unavailable
from .model_process import SERVICES, ask, read_exact, read_line
from .test_loops_local import (  # noqa: F401  (many_descriptors is a fixture)
    MANY, answer_all, conn_id, cpu_seconds, has_reply, in_nanosleep, many_descriptors, read_by_server,
    rss_mb, running, stats, unread, unread_by_server, wait_until, waker,
)

MODEL = "uring"


def uring_here() -> None:
    """io_uring must work on this host for a local test to mean anything."""
    done = subprocess.run([sys.executable, "-c", "from iorun import uring; uring.Ring().close()"],
                          env=dict(os.environ, PYTHONPATH=str(SERVICES)), capture_output=True, text=True)
    if done.returncode:
        unavailable(f"io_uring is not usable on this host: {done.stderr.strip()}")


@pytest.fixture(autouse=True)
def _needs_io_uring() -> None:
    uring_here()


def test_echo_stats_and_one_thread() -> None:
    with running(MODEL) as server, server.connect() as sock:
        assert ask(sock, b"client 1") == b"client 1"
        figures = stats(sock)
        assert figures["model"] == MODEL and figures["threads"] == 1 and figures["connections"] == 1
        # the completion loop's own counters: enters, SQEs submitted, CQEs reaped
        assert {"wakeups", "events", "enters", "submitted"} <= figures.keys()
        assert figures["submitted"] >= 3  # the waker's read, the accepts, the recv...


def test_sleep_does_not_delay_another_client() -> None:
    with running(MODEL, trace="msg") as server, server.connect() as sleeper, server.connect() as other:
        assert ask(sleeper, b"a") == b"a" and ask(other, b"b") == b"b"
        sleeper.sendall(b"SLEEP 300\nafter the sleep\n")  # pipelined: must wait its turn
        read_by_server(server, sleeper, "SLEEP 300")
        other.sendall(b"meanwhile\n")
        assert read_line(other) == b"meanwhile"
        assert not has_reply(sleeper), "the other client was answered only after the SLEEP"
        replies = sleeper.makefile("rb")
        assert replies.readline() == b"SLEPT 300\n"
        assert replies.readline() == b"after the sleep\n"  # in order, after the SLEEP
        assert stats(other)["threads"] == 1


def test_block_delays_every_other_client() -> None:
    with running(MODEL, trace="msg") as server, server.connect() as blocker, server.connect() as other:
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
        server.wait_for(lambda e: e["ev"] == "send" and e.get("conn") == conn_id(other), count=2)
        sends = [e for e in server.events if e["ev"] == "send"]
        order = [e["conn"] for e in sends if e.get("data", "").strip() in ("BLOCKED 300", "stuck behind it")]
        assert order == [conn_id(blocker), conn_id(other)]


def test_idle_it_waits_in_the_kernel() -> None:
    """While the only client waits for its own SLEEP, the loop turns a few
    times (the request, the timeout's completion, the reply) and burns no CPU."""
    with running(MODEL) as server, server.connect() as sock:
        before, cpu0, t0 = stats(sock), cpu_seconds(server.pid), time.monotonic()
        assert ask(sock, b"SLEEP 300") == b"SLEPT 300"
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
        after = stats(sock)
        assert after["enters"] - before["enters"] <= 10, (before, after)
        assert cpu < 0.25 * wall, f"{cpu:.2f}s of CPU in {wall:.2f}s"


def test_many_connections_past_1024_and_no_buffer_each(many_descriptors: None) -> None:
    """1,100 connections, every one answered (no descriptor limit of its own),
    and the memory they cost is not a buffer each: a recv in flight holds
    none until bytes arrive."""
    with running(MODEL, "--backlog", "2048") as server:
        socks: list[socket.socket] = []
        try:
            rss0 = rss_mb(server.pid)
            for _ in range(MANY):
                socks.append(server.connect(timeout=15))
            answered, closed = answer_all(socks)
            assert (len(answered), closed) == (MANY, 0)
            figures = stats(socks[0])
            assert figures["connections"] == MANY and figures["threads"] == 1
            grown_kb = (rss_mb(server.pid) - rss0) * 1024 / MANY
            assert grown_kb < 8, f"{grown_kb:.1f} kB resident per connection: a buffer each?"
        finally:
            for s in socks:
                s.close()


def test_half_close_still_gets_every_reply() -> None:
    with running(MODEL) as server, server.connect() as sock:
        sock.sendall(b"one\nSLEEP 20\ntwo\n")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert data == b"one\nSLEPT 20\ntwo\n"
        server.wait_for(lambda e: e["ev"] == "close" and e.get("reason") == "eof")


def test_client_that_never_reads_is_held_back() -> None:
    """Echo lines pushed without reading a reply: the send in flight waits
    for the client's window, replies pile up to the outbox's limit, then the
    server submits no more recvs for that client, while it serves others."""
    chunk = (b"x" * 63 + b"\n") * 1024
    stream = memoryview(chunk * 2)
    with running(MODEL) as server, server.connect(timeout=20) as flood, server.connect() as other:
        flood.setblocking(False)
        pushed, deadline = 0, time.monotonic() + 10
        while True:
            try:
                while True:
                    offset = pushed % len(chunk)
                    pushed += flood.send(stream[offset:offset + len(chunk)])
            except BlockingIOError:
                pass
            assert pushed < 64 << 20, f"{pushed >> 20} MB taken: the server reads without bound"
            assert time.monotonic() < deadline, f"never held back after {pushed >> 20} MB"
            unread_now = unread_by_server(server, flood)
            assert ask(other, b"still serving") == b"still serving"
            if unread_now and unread_by_server(server, flood) == unread_now:
                break
            selectors.DefaultSelector().select(0.01)
        assert rss_mb(server.pid) < 64, f"{rss_mb(server.pid):.0f} MB resident"
        assert stats(other)["threads"] == 1  # waiting sends took no worker thread
        flood.setblocking(True)
        offset, rest = pushed % len(chunk), -pushed % 64
        finisher = threading.Thread(target=flood.sendall, args=(chunk[offset:offset + rest],))
        finisher.start()
        total = pushed + rest
        assert read_exact(flood, total) == (chunk * (total // len(chunk) + 1))[:total]
        finisher.join(10)


def pingpong(port: int, clients: int, rounds: int) -> int:
    """``clients`` connections, each with one request in flight, for
    ``rounds`` replies each: the closed loop of the lab's pingpong."""
    sel = selectors.DefaultSelector()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
    left = {}
    try:
        for s in socks:
            s.setblocking(False)
            s.sendall(b"ping\n")
            sel.register(s, selectors.EVENT_READ)
            left[s] = rounds
        replies, deadline = 0, time.monotonic() + 30
        while left:
            assert time.monotonic() < deadline, f"{replies} replies in 30 s"
            for key, _ in sel.select(1):
                s = key.fileobj
                got = s.recv(4096).count(b"\n")
                assert got, "closed"
                replies += got
                left[s] -= got
                if left[s]:
                    s.send(b"ping\n")
                else:
                    del left[s]
                    sel.unregister(s)
        return replies
    finally:
        for s in socks:
            s.close()


def test_fewer_system_calls_than_replies_under_load() -> None:
    """One io_uring_enter per loop turn submits every send and recv queued
    and reaps every completion there: with 50 clients in a closed loop, a
    turn answers several, so enters are fewer than replies.  (strace on the
    process says the same: io_uring_enter is its only system call then.)"""
    with running(MODEL, trace="off") as server, server.connect() as control:
        before = stats(control)
        replies = pingpong(server.port, clients=50, rounds=100)
        after = stats(control)
        enters = after["enters"] - before["enters"] - 1  # the STATS request's own turn
        assert replies == 5000
        assert enters < replies, f"{enters} io_uring_enter for {replies} replies"
        # Every reply was a send completion and every request a recv completion: reaped, not polled.
        assert after["events"] - before["events"] >= 2 * replies


def test_accept_backs_off_on_emfile_then_serves() -> None:
    import resource
    with running(MODEL) as server:
        limits = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
        used = {int(fd) for fd in os.listdir(f"/proc/{server.pid}/fd")}
        lowest_free = min(set(range(len(used) + 1)) - used)
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            emfile = lambda e: e["ev"] == "error" and e.get("errno") == "EMFILE"  # noqa: E731
            first = server.wait_for(emfile)
            second = server.wait_for(emfile, count=2)
            assert second["t"] - first["t"] >= 0.09  # tried again after the back-off, not at once
            resource.prlimit(server.pid, resource.RLIMIT_NOFILE, limits)
            assert ask(sock, b"served after all") == b"served after all"
        assert sum(1 for e in server.events if emfile(e)) < 50  # it did not spin


def test_a_signal_wakes_the_wait() -> None:
    """A read is in flight on iorun's waker pipe: a byte written there (as
    the C signal handler writes one) completes it, the enter returns, the
    loop submits the read again and serves on."""
    with running(MODEL) as server, server.connect() as sock:
        assert ask(sock, b"hi") == b"hi"
        with open(f"/proc/{server.pid}/fd/{waker(server.pid)}", "wb", buffering=0) as pipe:
            for _ in range(2):  # the read is submitted again after each
                pipe.write(b"\x0f")
                wait_until(lambda: unread(pipe.fileno()) == 0, what="uring reading its waker")
        assert ask(sock, b"still") == b"still"
        assert server.stop(signal.SIGTERM) == 0


def test_sigterm_closes_open_connections() -> None:
    with running(MODEL) as server, server.connect() as idle, server.connect() as sleeper:
        assert ask(idle, b"hi") == b"hi"
        sleeper.sendall(b"SLEEP 5000\n")
        server.wait_for(lambda e: e["ev"] == "accept", count=2)
        assert stats(idle)["connections"] == 2
        assert server.stop(signal.SIGTERM) == 0
        server.wait_for(lambda e: e["ev"] == "close" and e.get("reason") == "shutdown", count=2)
        assert server.wait_for(lambda e: e["ev"] == "stop")["reason"] == "SIGTERM"
        assert idle.recv(1) == b""


def test_raise_drops_only_its_connection_even_with_a_recv_in_flight() -> None:
    """RAISE behind a pipelined SLEEP: the exception comes when the SLEEP
    ends, and the connection closes after its answered replies leave."""
    with running(MODEL) as server, server.connect() as first, server.connect() as other:
        first.sendall(b"SLEEP 50\nRAISE\nnever\n")
        assert ask(other, b"fine") == b"fine"
        replies = first.makefile("rb")
        assert replies.readline() == b"SLEPT 50\n"
        assert replies.read() == b""  # dropped
        server.wait_for(lambda e: e["ev"] == "close" and e.get("reason") == "raise")
        assert ask(other, b"still fine") == b"still fine"


def test_crash_takes_every_connection() -> None:
    with running(MODEL) as server, server.connect() as crasher, server.connect() as other:
        assert ask(other, b"hi") == b"hi"
        crasher.sendall(b"CRASH\n")
        assert server.proc.wait(10) == -signal.SIGSEGV
        try:
            assert other.recv(1) == b""
        except ConnectionResetError:
            pass
        server.wait_for(lambda e: e["ev"] == "crash" and e.get("conn") == conn_id(crasher))


# -- refused: a seccomp filter, as Docker 25+'s default profile installs --------------

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SECCOMPED = r"""
import ctypes, os, sys
arch, nr, err = (int(a) for a in sys.argv[1:4])
# struct sock_filter {u16 code; u8 jt, jf; u32 k}: if arch matches and nr == NR, fail with err
LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
class Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]
insns = (Insn * 6)(Insn(LD_ABS, 0, 0, 4), Insn(JEQ, 0, 3, arch), Insn(LD_ABS, 0, 0, 0),
                   Insn(JEQ, 0, 1, nr), Insn(RET, 0, 0, ERRNO | err), Insn(RET, 0, 0, ALLOW))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS: no privilege needed for a filter
assert libc.prctl(22, 2, ctypes.byref(Prog(6, insns)), 0, 0) == 0, ctypes.get_errno()  # PR_SET_SECCOMP
os.execv(sys.executable, [sys.executable, *sys.argv[4:]])
"""


def seccomped(nr: int, err: int) -> subprocess.CompletedProcess[str]:
    """The model under a seccomp filter that fails system call ``nr`` with ``err``."""
    arch = AUDIT_ARCH.get(platform.machine())
    if arch is None:
        unavailable(f"no seccomp architecture number here for {platform.machine()}")
    return subprocess.run(
        [sys.executable, "-c", SECCOMPED, str(arch), str(nr), str(err),
         str(SERVICES / MODEL / "server.py"), "--port", "0"],
        env=dict(os.environ, PYTHONPATH=str(SERVICES)), capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("nr, err, call", [
    (425, "EPERM", "io_uring_setup refused (EPERM)"),  # Docker 25+: blocked, EPERM
    (425, "ENOSYS", "io_uring_setup refused (ENOSYS)"),  # profiles that fail unknown calls with ENOSYS
    (427, "EPERM", "io_uring_register(PBUF_RING) refused (EPERM)"),  # a profile that allows only setup
])
def test_a_seccomp_filter_that_refuses_io_uring_gets_one_line_and_exit_2(nr: int, err: str, call: str) -> None:
    done = seccomped(nr, getattr(__import__("errno"), err))
    assert done.returncode == 2, done
    assert done.stdout == "", "nothing started: no start event, no listening socket"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"uring: {call} by this process's seccomp filter: Docker 25+ blocks io_uring")
    assert "services/uring/seccomp-io_uring.json" in lines[0]


def test_the_same_filter_on_another_call_changes_nothing() -> None:
    """The filter itself is sound: failing a call the model never makes
    (io_uring_setup's neighbour, 424: pidfd_send_signal) leaves it serving."""
    arch = AUDIT_ARCH.get(platform.machine())
    if arch is None:
        unavailable(f"no seccomp architecture number here for {platform.machine()}")
    proc = subprocess.Popen(
        [sys.executable, "-c", SECCOMPED, str(arch), "424", "1", str(SERVICES / MODEL / "server.py"), "--port", "0"],
        env=dict(os.environ, PYTHONPATH=str(SERVICES)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        start = json.loads(proc.stdout.readline())
        assert start["ev"] == "start"
        with socket.create_connection(("127.0.0.1", start["port"]), timeout=5) as sock:
            assert ask(sock, b"filtered but fine") == b"filtered but fine"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_the_binding_reaps_what_it_submits() -> None:
    """The ring by itself: recvs into pool buffers, cycling the pool more
    than once, a timeout at an absolute instant, and a cancel."""
    from iorun import uring
    ring = uring.Ring(8, 16, buffers=4, buffer_size=64)
    a, b = socket.socketpair()
    try:
        for i in range(10):  # 10 recvs through a pool of 4: buffers come back
            ring.recv(a.fileno(), 100 + i)
            b.send(b"n%d" % i)
            ring.submit(1)
            ((ud, res, flags),) = ring.completions()
            assert (ud, res) == (100 + i, 2) and flags & uring.CQE_F_BUFFER
            assert ring.buffers.take(flags, res) == b"n%d" % i
        spec = uring.timespec(time.monotonic() + 0.05)
        ring.timeout(ctypes.addressof(spec), 7)
        began = time.monotonic()
        ring.submit(1)
        assert ring.completions() == [(7, -62, 0)]  # -ETIME, when the instant came
        assert time.monotonic() - began >= 0.04
        ring.recv(a.fileno(), 8)
        ring.cancel(8, 9)
        ring.submit(2)
        got = dict((ud, res) for ud, res, _ in ring.completions())
        assert got == {8: -125, 9: 0}  # the recv -ECANCELED, the cancel done
        assert ring.enters == 12  # one io_uring_enter per submit(), nothing else
    finally:
        ring.close()
        a.close()
        b.close()


def test_the_pool_offers_one_buffer_more_per_enobufs() -> None:
    """Two buffers offered, three recvs with bytes waiting: one gets ENOBUFS,
    a third buffer is offered, and the recv submitted again gets it."""
    from iorun import uring
    ring = uring.Ring(8, 16, buffers=8, buffer_size=64, offered=2)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for i, (a, b) in enumerate(pairs):
            b.send(b"x%d" % i)
            ring.recv(a.fileno(), i)
        ring.submit(3)
        done = ring.completions()
        assert sorted(res for _, res, _ in done) == [-105, 2, 2]  # -ENOBUFS for one
        for _, res, flags in done:
            if res > 0:
                ring.buffers.take(flags, res)
        (starved,) = [ud for ud, res, _ in done if res < 0]
        ring.buffers.offer_more()
        assert ring.buffers.offered == 3
        ring.recv(pairs[starved][0].fileno(), 9)
        ring.submit(1)
        ((ud, res, flags),) = ring.completions()
        assert (ud, ring.buffers.take(flags, res)) == (9, b"x%d" % starved)
    finally:
        ring.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_a_full_submission_queue_is_handed_over_on_the_way() -> None:
    """More operations queued in one turn than the SQ holds: the ring
    submits what is queued (without waiting) and goes on queueing.  And more
    completions than the CQ holds: none is lost."""
    from iorun import uring
    ring = uring.Ring(4, 16, buffers=4, buffer_size=64)
    a, b = socket.socketpair()
    try:
        for i in range(10):  # 10 recvs queued, 4 slots: two flushes on the way
            ring.recv(a.fileno(), i)
        assert ring.enters == 2 and ring.submitted == 8
        ring.submit(0)
        assert ring.submitted == 10 and ring.enters == 3
        for i in range(10):
            ring.cancel(i, 100 + i)
        ring.submit(16)
        got = ring.completions()  # 20 completions, a CQ of 16: the kernel keeps the rest (NODROP)...
        assert len(got) == 16
        ring.submit(1)  # ...and hands them over on the next enter, at once
        got += ring.completions()
        assert sorted(ud for ud, _, _ in got) == [*range(10), *range(100, 110)]
        assert {res for ud, res, _ in got if ud < 10} == {-125}  # every recv cancelled
    finally:
        ring.close()
        a.close()
        b.close()


def test_without_defer_taskrun_the_ring_still_works(monkeypatch) -> None:
    """A 5.19-6.0 kernel refuses DEFER_TASKRUN (EINVAL): the ring is set up
    with the flags such a kernel takes, and serves the same."""
    from iorun import uring
    real = uring._setup

    def older(nr: int, entries: int, params: object) -> int:
        if ctypes.cast(params, ctypes.POINTER(uring.Params)).contents.flags & uring.SETUP_DEFER_TASKRUN:
            ctypes.set_errno(22)  # EINVAL: a flag this kernel does not know
            return -1
        return real(nr, entries, params)
    monkeypatch.setattr(uring, "_setup", older)
    ring = uring.Ring(8, 16, buffers=4, buffer_size=64)
    a, b = socket.socketpair()
    try:
        assert ring.params.flags & uring.SETUP_COOP_TASKRUN and not ring.params.flags & uring.SETUP_DEFER_TASKRUN
        for i in range(6):
            ring.recv(a.fileno(), i)
            b.send(b"old %d" % i)
            ring.submit(1)
            ((ud, res, flags),) = ring.completions()
            assert (ud, ring.buffers.take(flags, res)) == (i, b"old %d" % i)
    finally:
        ring.close()
        a.close()
        b.close()
