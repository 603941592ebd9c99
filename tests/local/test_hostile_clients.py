"""Hostile clients never cost the other clients their service.

For every model that serves more than one client at once: while one client
misbehaves (a line far over the limit, an endless header, one byte at a
time, a reset in the middle of a reply, a half-close), another client's
requests are still answered.
"""

from __future__ import annotations

import signal
import socket
import struct
import threading

import pytest
import yaml

from .model_process import SERVICES, ModelProcess, ask

CONCURRENT = sorted(
    p.parent.name for p in SERVICES.glob("*/model.yaml")
    if (p.parent / "server.py").exists() and yaml.safe_load(p.read_text())["expect"]["peak_served"] != 1)


@pytest.fixture(params=CONCURRENT)
def server(request):
    proc = ModelProcess(request.param, "--max-line", "4096")
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def still_served(server: ModelProcess) -> None:
    with server.connect() as other:
        for i in range(3):
            assert ask(other, b"fine %d" % i) == b"fine %d" % i


def test_oversized_line(server: ModelProcess) -> None:
    with server.connect() as hostile:
        hostile.sendall(b"z" * 3000)  # under the limit so far, no newline: waiting for more
        still_served(server)
        try:
            hostile.sendall(b"z" * 10_000)
            assert hostile.recv(100).startswith(b"ERR line too long")
        except ConnectionResetError:
            pass  # closed with our bytes unread: the kernel says so with a reset
        still_served(server)


def test_endless_http_header(server: ModelProcess) -> None:
    with server.connect() as hostile:
        hostile.sendall(b"GET / HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 20_000)
        still_served(server)
        try:
            assert hostile.recv(100).startswith(b"HTTP/1.1 431")
        except ConnectionResetError:
            pass
        still_served(server)


def test_one_byte_at_a_time(server: ModelProcess) -> None:
    with server.connect() as slow:
        for byte in b"slow client":
            slow.sendall(bytes([byte]))
            still_served(server)  # every byte, the others are served in between
        slow.sendall(b"\n")
        assert slow.recv(100) == b"slow client\n"


def test_reset_mid_reply(server: ModelProcess) -> None:
    with server.connect() as hostile:
        hostile.sendall(b"y" * 4000 + b"\n" + b"PING\n" * 2000)
        hostile.recv(100)
        hostile.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    still_served(server)


def test_half_closed_client_that_never_reads(server: ModelProcess) -> None:
    hostile = server.connect()
    try:
        hostile.sendall(b"unread reply\n" * 50_000)  # 650 kB of replies it will never read
        hostile.shutdown(socket.SHUT_WR)
        still_served(server)
    finally:
        threading.Thread(target=hostile.close).start()
