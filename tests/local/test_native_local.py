"""The native reference (services/native) as local processes: iolab-echo's
protocol, back-pressure, descriptor exhaustion and signals, and
iolab-pingpong's report.  Both are compiled here with the host's gcc, as the
native image compiles them (gcc -O2 -Wall -Wextra, warnings are errors), or,
on a host without gcc, taken out of the native image.
Synchronisation is by the server's own events, with bounded waits."""

from __future__ import annotations

import io
import json
import os
import tarfile
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from .model_process import SERVICES

NATIVE = SERVICES / "native"


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Path]:
    """iolab-echo and iolab-pingpong: compiled with the host's gcc where there
    is one, else taken out of the lab's native image (compiled by the tools
    image's gcc), so the tests need no host tool but Docker and Python."""
    out = tmp_path_factory.mktemp("native")
    gcc = shutil.which("gcc")
    if gcc is None:
        return from_image(request.getfixturevalue("engine"), out)
    built = {}
    for name, source in (("iolab-echo", "echo.c"), ("iolab-pingpong", "pingpong.c")):
        done = subprocess.run([gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out / name),
                               str(NATIVE / source)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        built[name] = out / name
    return built


def from_image(engine: Any, out: Path) -> dict[str, Path]:
    """Copy the two binaries out of the native image the lab builds."""
    from lab import config
    from lab.console import say
    from lab.plan import compose
    from lab.run import images
    service = compose.load_topology(config.compose_file()).service("native")
    image = images.for_service(engine, service, say)
    container = engine.client.containers.create(image, command=["true"], labels={"org.iolab.lab": engine.lab})
    try:
        built = {}
        for name in ("iolab-echo", "iolab-pingpong"):
            stream, _ = container.get_archive(f"/usr/local/bin/{name}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.next()
                assert member is not None, name
                data = tar.extractfile(member)
                assert data is not None, name
                (out / name).write_bytes(data.read())
            (out / name).chmod(0o755)
            built[name] = out / name
        return built
    finally:
        container.remove(force=True)


class Echo:
    """iolab-echo on a free port, its events collected as they come."""

    def __init__(self, binary: Path, *args: str, preexec: Callable[[], None] | None = None) -> None:
        self.proc = subprocess.Popen([str(binary), "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=preexec)
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self.wait_for(lambda e: e["ev"] == "start")["port"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.events.append(json.loads(line))  # every line must be one JSON event
                self._cond.notify_all()
        with self._cond:
            self.events.append({"ev": "<stdout closed>"})
            self._cond.notify_all()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], count: int = 1,
                 timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if match(e)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.events and self.events[-1]["ev"] == "<stdout closed>":
                    raise AssertionError(f"iolab-echo: {len(found)}/{count} matching events within "
                                         f"{timeout}s; tail: {self.events[-6:]}")
                self._cond.wait(left)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def echo(binaries: dict[str, Path]) -> Iterator[Callable[..., Echo]]:
    started: list[Echo] = []

    def start(*args: str, preexec: Callable[[], None] | None = None) -> Echo:
        server = Echo(binaries["iolab-echo"], *args, preexec=preexec)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def read_until(sock: socket.socket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    return bytes(got)


# -- iolab-echo -------------------------------------------------------------------

def test_start_event_and_sigterm(echo: Callable[..., Echo]) -> None:
    server = echo("--backlog", "64", "--trace", "off")
    start = server.events[0]
    assert {"t", "ev", "model", "pid", "tid", "port", "backlog", "somaxconn", "nofile", "wall"} <= set(start)
    assert (start["model"], start["pid"], start["backlog"]) == ("native", server.proc.pid, 64)
    assert server.stop() == 0
    stop = server.wait_for(lambda e: e["ev"] == "stop")
    assert stop["reason"] == "SIGTERM"


def test_partial_lines_and_pipelining(echo: Callable[..., Echo]) -> None:
    server = echo("--trace", "off")
    with server.connect() as sock:
        for part in (b"hel", b"lo\nwor", b"ld\n"):
            sock.sendall(part)
        assert read_until(sock, 12) == b"hello\nworld\n"
        lines = b"".join(b"line %d\n" % i for i in range(500))
        sock.sendall(lines)  # one write, many requests: answered in order
        assert read_until(sock, len(lines)) == lines


def test_commands_are_not_supported_and_the_rest_is_echoed(echo: Callable[..., Echo]) -> None:
    server = echo("--trace", "off")
    with server.connect() as sock:
        sock.sendall(b"STATS\nSLEEP 5\nSLEEPY 5\nCRASH\nsleep 5\n\n")
        want = b"ERR not supported\nERR not supported\nSLEEPY 5\nERR not supported\nsleep 5\n\n"
        assert read_until(sock, len(want)) == want
        sock.sendall(b"still here\n")  # a CRASH crashed nothing
        assert read_until(sock, 11) == b"still here\n"


def test_half_close_gets_every_answer_then_eof(echo: Callable[..., Echo]) -> None:
    server = echo("--trace", "conn")
    with server.connect() as sock:
        sock.sendall(b"a\nb\n")
        sock.shutdown(socket.SHUT_WR)
        assert read_until(sock, 100) == b"a\nb\n"  # then EOF
        name = "%s:%d" % sock.getsockname()
    close = server.wait_for(lambda e: e["ev"] == "close" and e.get("conn") == name)
    assert close["reason"] == "eof"
    server.wait_for(lambda e: e["ev"] == "accept" and e.get("conn") == name)


def test_a_line_too_long_is_refused_and_closed(echo: Callable[..., Echo]) -> None:
    server = echo("--trace", "conn")
    with server.connect() as sock:
        sock.sendall(b"ok\n" + b"x" * ((1 << 20) + 100))
        assert read_until(sock, 1 << 21) == b"ok\nERR line too long\n"  # then EOF


def test_back_pressure_holds_replies_without_growing(echo: Callable[..., Echo]) -> None:
    """The client writes 32 MiB of requests and reads nothing: the server's
    sends would block, so it keeps what is queued, stops reading (TCP then
    stops the client) and its memory stays bounded; once the client reads,
    every reply arrives, whole and in order."""
    server = echo("--trace", "off")
    line = b"y" * 1023 + b"\n"
    total = 32 << 10  # lines: 32 MiB
    with server.connect() as sock:
        sock.settimeout(None)
        sent = 0
        sock.setblocking(False)
        while sent < total * len(line):
            try:
                sent += sock.send(line * 64)
            except BlockingIOError:
                break  # both directions are full: the server stopped reading
        assert sent < total * len(line), "the server read everything without anyone reading its replies"
        rss = server.rss_kib()
        assert rss < 16 << 10, f"the server holds {rss} KiB for a client that does not read"
        sock.settimeout(60)  # bounded: a server that never sends what it holds fails here, saying so
        want = sent - sent % len(line)
        got = bytearray()
        try:
            while len(got) < want and (chunk := sock.recv(1 << 16)):
                got += chunk
        except socket.timeout:
            pytest.fail(f"after 60 s the server had sent {len(got)} of the {want} bytes it owed")
        assert bytes(got) == line * (want // len(line))


def test_out_of_descriptors_backs_off_and_recovers(echo: Callable[..., Echo]) -> None:
    def few() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (12, 12))

    server = echo("--trace", "conn", preexec=few)
    socks = []
    try:
        for _ in range(12):  # more than fit: the rest wait in the backlog
            socks.append(server.connect())
        error = server.wait_for(lambda e: e["ev"] == "error" and e.get("kind") == "accept")
        assert error["errno"] == "EMFILE" and error["backoff"] > 0
        accepted = sum(1 for e in server.events if e["ev"] == "accept")
        assert accepted < len(socks)
        for sock in socks[:len(socks) - accepted]:  # free as many as still wait
            sock.close()
        server.wait_for(lambda e: e["ev"] == "accept", count=len(socks))  # every waiting one got in
        last = socks[-1]
        last.sendall(b"late\n")
        assert read_until(last, 5) == b"late\n"
    finally:
        for sock in socks:
            sock.close()


def test_msg_level_shows_what_was_read_and_written(echo: Callable[..., Echo]) -> None:
    server = echo("--trace", "msg")
    with server.connect() as sock:
        sock.sendall(b'say "hi"\n')
        assert read_until(sock, 9) == b'say "hi"\n'
        name = "%s:%d" % sock.getsockname()
    recv = server.wait_for(lambda e: e["ev"] == "recv" and e.get("conn") == name)
    send = server.wait_for(lambda e: e["ev"] == "send" and e.get("conn") == name)
    assert recv["bytes"] == send["bytes"] == 9 and recv["data"] == send["data"] == 'say "hi"\n'


@pytest.mark.parametrize("flags", [["--port", "x"], ["--trace", "loud"], ["--nope", "1"], ["--backlog"]])
def test_bad_flags_exit_2_with_one_line(binaries: dict[str, Path], flags: list[str]) -> None:
    done = subprocess.run([str(binaries["iolab-echo"]), *flags], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("iolab-echo: error: ")


# -- iolab-pingpong and iolab-pyfloor (CPython's floor): the same flags and report ----

CLIENTS = ("iolab-pingpong", "iolab-pyfloor")


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> list[str]:
    """The command of one load client: the C one (built above) or CPython's floor."""
    if request.param == "iolab-pyfloor":
        return [sys.executable, str(NATIVE / "pyfloor.py")]
    return [str(request.getfixturevalue("binaries")["iolab-pingpong"])]


def pingpong(client: list[str], *flags: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([*client, *flags], capture_output=True, text=True, timeout=30)
    return done.returncode, json.loads(done.stdout) if done.stdout else {"stderr": done.stderr}


def test_pingpong_reports_rate_cpu_and_latency(client: list[str], echo: Callable[..., Echo]) -> None:
    server = echo("--trace", "conn")
    code, doc = pingpong(client, "--target", f"127.0.0.1:{server.port}", "--connections", "20",
                         "--duration", "1.0", "--warmup", "0.3", "--size", "64", "--pipeline", "2")
    assert code == 0, doc
    assert (doc["connections"], doc["connected"], doc["pipeline"], doc["size"]) == (20, 20, 2, 64)
    assert doc["replies"] > doc["replies_measured"] > 0 and sum(doc["errors"].values()) == 0
    assert doc["replies_per_s"] == pytest.approx(doc["replies_measured"] / doc["window_s"], rel=0.01)
    lat = doc["latency"]
    assert lat["count"] == doc["replies_measured"]
    assert 0 < lat["p50_us"] <= lat["p90_us"] <= lat["p99_us"] <= lat["p99_9_us"] <= lat["max_us"]
    assert doc["cpu_us_per_reply"] > 0 and doc["cpu"]["user_s"] + doc["cpu"]["sys_s"] > 0
    server.wait_for(lambda e: e["ev"] == "accept", count=20)


def test_pingpong_against_nothing_fails_with_refusals(client: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connects are refused
    code, doc = pingpong(client, "--target", f"127.0.0.1:{port}", "--connections", "3",
                         "--duration", "0.3", "--warmup", "0")
    assert code == 1 and doc["connected"] == 0 and doc["errors"]["refused"] == 3


@pytest.mark.parametrize("flags", [[], ["--target", "nocolon"], ["--target", "h:1", "--size", "1"],
                                   ["--target", "h:1", "--warmup", "5", "--duration", "1"]])
def test_pingpong_bad_flags_exit_2(client: list[str], flags: list[str]) -> None:
    done = subprocess.run([*client, *flags], capture_output=True, text=True, timeout=10)
    name = "iolab-pyfloor" if client[-1].endswith("pyfloor.py") else "iolab-pingpong"
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"{name}: error: ") and len(done.stderr.strip().splitlines()) == 1


def test_warnings_free_build(binaries: dict[str, Path]) -> None:
    """-Werror fails on any warning, here (host gcc) and in the native image's
    build (the Dockerfile's compile lines), which is where a host without gcc
    got its binaries; C99/gnu11 as well."""
    dockerfile = (NATIVE / "Dockerfile").read_text()
    assert dockerfile.count("gcc -std=gnu11 -O2 -Wall -Wextra -Werror") == 2, dockerfile
    if shutil.which("gcc"):
        for source in ("echo.c", "pingpong.c"):
            done = subprocess.run(["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                                   str(NATIVE / source)], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
    assert os.access(binaries["iolab-echo"], os.X_OK)
