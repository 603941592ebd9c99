"""Every model, as a local subprocess: the behaviour all models share.

Each test runs against each model found in services/ (a folder with a
model.yaml and a server.py).  What differs between models (how many clients
are served at once) is read from the model's own model.yaml.
"""

from __future__ import annotations

import json
import selectors
import signal
import socket
import struct
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
import yaml

from .model_process import SERVICES, ModelProcess, ask, read_exact, read_line

MODELS = sorted(p.parent.name for p in SERVICES.glob("*/model.yaml") if (p.parent / "server.py").exists())


def declared(model: str) -> dict:
    return yaml.safe_load((SERVICES / model / "model.yaml").read_text())


@pytest.fixture(params=MODELS)
def server(request):
    proc = ModelProcess(request.param, "--max-line", "600000", "--backlog", "256")
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def test_echo_and_stats(server: ModelProcess) -> None:
    with server.connect() as sock:
        assert ask(sock, b"client 1") == b"client 1"
        assert ask(sock, b"") == b""
        assert ask(sock, b"SLEEP abc").startswith(b"ERR ")
        stats = json.loads(ask(sock, b"STATS"))
        assert stats["model"] == server.model
        assert stats["connections"] >= 1


def test_sleep_answers_after_the_wait(server: ModelProcess) -> None:
    with server.connect() as sock:
        began = time.monotonic()
        assert ask(sock, b"SLEEP 50") == b"SLEPT 50"
        assert time.monotonic() - began >= 0.05


def test_http_keep_alive_and_commands(server: ModelProcess) -> None:
    with server.connect() as sock:
        replies = sock.makefile("rb")
        # two requests in one write: pipelined, answered in order
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /sleep/5 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_http(replies)
        assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"\r\n\r\n/hello\n")
        assert read_http(replies).endswith(b"SLEPT 5\n")
        sock.sendall(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert read_http(replies).endswith(b"/x\n")
        assert replies.read() == b""  # closed as asked


def test_malformed_http_gets_400_and_the_server_goes_on(server: ModelProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        replies = sock.makefile("rb")
        assert read_http(replies).startswith(b"HTTP/1.1 400 ")
        assert replies.read() == b""
    with server.connect() as sock:
        assert ask(sock, b"still here") == b"still here"


def test_oversized_line_is_refused_and_closed(server: ModelProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"x" * 700_000)
        assert read_line(sock) == b"ERR line too long"
        assert_closed(sock)
    with server.connect() as sock:
        assert ask(sock, b"next") == b"next"


def test_large_payload_beyond_socket_buffers(server: ModelProcess) -> None:
    line = bytes(range(97, 123)) * 20_000  # 520 kB, more than any default socket buffer
    with server.connect(timeout=20) as sock:
        assert ask(sock, line) == line


def test_pipelined_flood_under_back_pressure(server: ModelProcess) -> None:
    """4 MB of requests sent without reading: the server's sends fill the
    client's window and must wait (partial sends), and every reply arrives."""
    lines = [b"%07d" % i + b"." * 120 for i in range(32_000)]
    payload = b"".join(l + b"\n" for l in lines)
    with server.connect(timeout=30) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = read_exact(sock, len(payload))
        sender.join(30)
    assert received == payload


def test_half_close_still_gets_every_reply(server: ModelProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"one\ntwo\nthree\n")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data == b"one\ntwo\nthree\n"


def test_reset_mid_reply_leaves_the_server_serving(server: ModelProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"y" * 500_000 + b"\n")
        sock.recv(1000)  # the reply has started
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # closing with linger 0 sent a RST in the middle of the reply
    with server.connect() as sock:
        assert ask(sock, b"after reset") == b"after reset"


def test_raise_drops_only_that_connection(server: ModelProcess) -> None:
    with server.connect() as first:
        assert ask(first, b"hello") == b"hello"
        with server.connect() as other:
            other.sendall(b"waiting\n")
            first.sendall(b"RAISE\n")
            assert first.recv(1) == b""  # dropped
            assert read_line(other) == b"waiting"  # the server carries on
    server.wait_for(lambda e: e["ev"] == "error" and e.get("kind") == "handler")


def test_sigterm_stops_gracefully(server: ModelProcess) -> None:
    with server.connect() as sock:
        assert ask(sock, b"hi") == b"hi"
        assert server.stop(signal.SIGTERM) == 0
    server.wait_for(lambda e: e["ev"] == "stop")


@pytest.mark.parametrize("model", MODELS)
def test_serves_as_many_at_once_as_declared(model: str) -> None:
    """Exactly the declared number of clients are served at once: the
    lower bound from the replies, the upper bound from the server's trace."""
    with traced_server(model) as server:
        assert_serves_at_once(server, declared(model)["expect"]["peak_served"])


# A declaration that does not match the model must fail the same check: one
# that says too few (the extra client is read before anyone left) and one
# that says too many (not enough replies come).
WRONG = [("threads", 1), ("threadpool", 1), ("prefork", 1), ("epoll", "workers"),
         ("blocking", "workers"), ("blocking", "all")]


@pytest.mark.parametrize("model, wrong", WRONG, ids=[f"{m}-as-{w}" for m, w in WRONG])
def test_a_wrong_declaration_fails_the_check(model: str, wrong: object) -> None:
    with traced_server(model) as server:
        with pytest.raises(AssertionError, match=r"read before a served client left|answered before any left|"
                                                 r"clients answered within|were being served at once"):
            assert_serves_at_once(server, wrong, timeout=2)


# Seconds the served clients stay while the test watches for a waiting one
# being read: far longer than a thread or a worker takes to start.
OVERSERVE_WINDOW = 0.5


@contextmanager
def traced_server(model: str) -> Iterator[ModelProcess]:
    """The model at trace level msg (a recv event per read); a pool, if it
    has one, of the size model.yaml declares, every member seen serving."""
    size = declared(model).get("workers")
    proc = ModelProcess(model, "--backlog", "256", *(("--workers", str(size)) if size else ()), trace="msg")
    try:
        if size:  # prefork's workers start after the master's start event
            warm = [proc.connect() for _ in range(size)]
            for s in warm:
                s.sendall(b"warm\n")
            wait_replies(warm, size, timeout=15)
            for s in warm:
                s.close()
            proc.wait_for(lambda e: e["ev"] == "close", count=size, timeout=15)
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def assert_serves_at_once(server: ModelProcess, peak: object, timeout: float = 15) -> None:
    """Open more clients than ``peak`` allows (200 where it is ``all``).
    ``peak`` of them are answered; for a bounded model, the server's trace
    shows that no other client was read before a served one left, and that a
    waiting client was read only after it had."""
    want = {"1": 1, "all": 200}.get(str(peak)) or _workers(server.model)
    total = want if peak == "all" else want + 1
    socks = [server.connect(timeout=10) for _ in range(total)]
    ids = {s: conn_id(s) for s in socks}
    try:
        for i, s in enumerate(socks):
            s.sendall(b"client %d\n" % i)
        answered = wait_replies(socks, want, timeout=timeout)
        assert len(answered) == want, f"{len(answered)} clients answered before any left; {want} declared"
        if peak == "all":
            return  # every client answered while all stayed connected
        waiting = [s for s in socks if s not in answered]
        # A bounded look for the opposite while the served clients stay: a
        # model that serves more than declared reads a waiting client within
        # it; a bounded one never does (the trace below proves that part).
        unread = {ids[s] for s in waiting}
        extra = server.look_for(lambda e: e["ev"] == "recv" and e.get("conn") in unread, OVERSERVE_WINDOW)
        assert extra is None, (f"{server.model}: {extra['conn']} read before a served client left; "
                               f"{want} declared")
        leaver = ids[answered[0]]
        answered[0].close()
        assert wait_replies(waiting, 1, timeout=timeout) == waiting
        left = server.wait_for(lambda e: e["ev"] == "close" and e.get("conn") == leaver)["t"]
        reads = first_reads(server, list(ids.values()))
        early = sorted(ids[s] for s in waiting if reads[ids[s]] < left)
        assert not early, (f"{server.model}: {early} read before a served client left (at {left}); "
                           f"{want} declared; first reads {reads}")
        at_once = most_at_once(reads, {leaver: left})
        assert at_once == want, f"{at_once} clients were being served at once, not {want}: {reads}"
    finally:
        for s in socks:
            s.close()


def conn_id(sock: socket.socket) -> str:
    """The server's name for this client's connection (its peer address)."""
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def first_reads(server: ModelProcess, conns: list[str]) -> dict[str, float]:
    """conn id -> when the server first read from it (a bounded wait for each)."""
    return {c: server.wait_for(lambda e, c=c: e["ev"] == "recv" and e.get("conn") == c)["t"]
            for c in conns}


def most_at_once(reads: dict[str, float], closes: dict[str, float]) -> int:
    """The most connections between their first read and their close at any
    one moment (a close at the same instant as a read comes first)."""
    marks = sorted([(t, 1) for t in reads.values()] + [(t, -1) for t in closes.values()])
    level = peak = 0
    for _, step in marks:
        level += step
        peak = max(peak, level)
    return peak


def assert_closed(sock: socket.socket) -> None:
    """The server closed: EOF, or a reset because it closed with our unread
    bytes still in its buffer (the kernel's answer to that is RST)."""
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass


def _workers(model: str) -> int:
    return int(declared(model).get("workers", 4))


def wait_replies(socks: list[socket.socket], want: int, timeout: float) -> list[socket.socket]:
    """Wait until ``want`` of ``socks`` have a full reply line; return them.
    Fails with how many answered if fewer did within ``timeout``."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    done: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    while len(done) < want:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(done)} of {want} clients answered within {timeout}s"
        for key, _ in sel.select(left):
            chunk = key.fileobj.recv(4096)
            bufs[key.fileobj] += chunk
            if bufs[key.fileobj].endswith(b"\n") or not chunk:
                sel.unregister(key.fileobj)
                done.append(key.fileobj)
    sel.close()
    return done


def read_http(replies) -> bytes:
    """One whole HTTP response (head and Content-Length body) from a file."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = replies.readline()
        assert line, f"closed mid-head: {head!r}"
        head += line
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:"))
    return head + replies.read(length)
