"""Run a model as a local subprocess on a free port and talk to it.

Fast, no Docker: the same server file the container runs, started with
``--port 0``; the port is read from the model's own ``start`` event, and
every later event is kept so tests can assert on the trace.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, cast

SERVICES = Path(__file__).resolve().parents[2] / "services"


class ModelProcess:
    def __init__(self, model: str, *args: str, trace: str = "conn") -> None:
        self.model = model
        env = dict(os.environ, PYTHONPATH=str(SERVICES), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVICES / model / "server.py"), "--port", "0",
             "--trace", trace, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Condition()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()
        start = self.wait_for(lambda e: e["ev"] == "start", timeout=10)
        self.port: int = start["port"]
        self.pid: int = self.proc.pid

    def _read_events(self) -> None:
        for line in cast(IO[bytes], self.proc.stdout):  # a pipe: Popen was given PIPE
            try:
                event = json.loads(line)
            except ValueError:
                event = {"ev": "garbage", "line": line.decode(errors="replace")}
            with self._lock:
                self.events.append(event)
                self._lock.notify_all()
        with self._lock:
            self.events.append({"ev": "<stdout closed>"})
            self._lock.notify_all()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 5,
                 count: int = 1) -> dict[str, Any]:
        """Wait until ``count`` events match; return the last.  Fails with the
        trace so far, so a hang says what the server did instead."""
        found = self.look_for(match, timeout, count)
        if found is None:
            with self._lock:
                seen = sum(1 for e in self.events if match(e))
                raise AssertionError(
                    f"{self.model}: {seen}/{count} matching events within {timeout}s; "
                    f"trace tail: {self.events[-8:]}; stderr: {b''.join(self._stderr)[-500:]!r}")
        return found

    def look_for(self, match: Callable[[dict[str, Any]], bool], timeout: float,
                 count: int = 1) -> dict[str, Any] | None:
        """The ``count``th matching event, or None if it did not come within
        ``timeout`` (or the server's output ended first)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [e for e in self.events if match(e)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.events and self.events[-1]["ev"] == "<stdout closed>":
                    return None
                self._lock.wait(left)

    def connect(self, timeout: float = 5) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return sock

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.model} did not stop within {timeout}s of {sig!r}")


def ask(sock: socket.socket, line: bytes) -> bytes:
    """Send one request line and read its one reply line."""
    sock.sendall(line + b"\n")
    return read_line(sock)


def read_line(sock: socket.socket) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(buf)!r}")
        buf += chunk
    return bytes(buf[:-1])


def read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)
