"""The swarm's C fast path (services/swarm/fastpath.c) built with this host's
gcc: its histogram layout and bucket function are ioschema.hist's, it books
replies as book.Ledger does and hands back what Python must finish, and a
worker that runs it keeps the same books as one that does not.  The app
image's build is checked the same way in tests/live/test_swarm_live.py.
Without gcc these tests skip, saying so."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iorun import Trace
from ioschema import hist
from swarm import fastpath, patterns
from swarm.conn import Share
from swarm.worker import Worker
from tests.live import fastpath_probe

SOURCE = Path(fastpath.__file__).with_name("fastpath.c")
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="no gcc on this host: fastpath.c is checked in the app image "
                                                   "only (tests/live/test_swarm_live.py)")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """libfastpath.so, compiled as services/Dockerfile compiles it (any warning fails)."""
    if GCC is None:
        pytest.skip("no gcc on this host")
    out = tmp_path_factory.mktemp("fastpath") / "libfastpath.so"
    subprocess.run([GCC, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", str(out),
                    str(SOURCE)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def lib(built: Path) -> Any:
    loaded = fastpath.load(built)
    assert loaded is not None, "built, but refused: its histogram layout is not ioschema.hist's"
    return loaded


@needs_gcc
def test_the_c_histogram_layout_is_ioschema_hist(lib: Any) -> None:
    assert fastpath.layout(lib) == (hist.SUB_BITS, hist.HALF_BITS, hist.SIZE)
    edges = [0, 1, 2047, 2048, 2049, 4095, 4096, 10**6, 2**62, 2**63 - 1]
    assert [lib.fp_bucket_of(v) for v in edges] == [hist.index_of(v) for v in edges]


@needs_gcc
@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_the_c_bucket_is_index_of(lib: Any, value: int) -> None:
    assert lib.fp_bucket_of(value) == hist.index_of(value)


@needs_gcc
def test_a_library_of_another_layout_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "libother.so"
    source = SOURCE.read_text().replace("#define SUB_BITS 11", "#define SUB_BITS 12")
    (tmp_path / "other.c").write_text(source)
    assert GCC is not None
    subprocess.run([GCC, "-std=gnu11", "-O2", "-shared", "-fPIC", "-o", str(other), str(tmp_path / "other.c")],
                   check=True, capture_output=True)
    assert fastpath.load(other) is None  # the worker runs its Python loop instead


@needs_gcc
def test_c_books_replies_as_the_ledger_does_and_hands_back_the_rest(built: Path) -> None:
    fastpath_probe.check(fastpath_probe.run(built))


# -- a worker on the real thing ------------------------------------------------------------

# A line echo server in a process of its own: the C loop holds the GIL
# while it waits in epoll (PyDLL), so a server thread in this process would
# only run when it returned.
ECHO = """
import selectors, socket
listener = socket.create_server(("127.0.0.1", 0))
listener.setblocking(False)
print(listener.getsockname()[1], flush=True)
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is listener:
            conn, _ = listener.accept()
            sel.register(conn, selectors.EVENT_READ)
            continue
        try:
            data = key.fileobj.recv(65536)
        except OSError:
            data = b""
        if not data:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            continue
        key.fileobj.setblocking(True)
        key.fileobj.sendall(data)
        key.fileobj.setblocking(False)
"""


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield ("127.0.0.1", port)
    finally:
        proc.kill()
        proc.wait()


def run_worker(addr: tuple[str, int], fast_path: bool, clients: int = 4, duration: float = 0.4) -> Any:
    """A worker's whole run (no signals: this is pytest's process)."""
    t0 = time.monotonic()
    share = Share(worker=0, clients=list(range(1, clients + 1)), active=clients, pattern=patterns.PingPong(1),
                  message=lambda i: patterns.message("x" * 20, i, None), addr=addr, family=socket.AF_INET,
                  t0=t0, warm_end=t0 + 0.1, t_end=t0 + duration, count=None, ramp=None, connect_timeout=1.0,
                  max_connecting=clients, timeline_per_conn=100, fast_path=fast_path)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        worker = Worker(share, Trace("swarm", "off", fd=devnull))
        worker.start()
        while worker.stop_reason is None:
            worker.turn()
        return worker.finish()
    finally:
        os.close(devnull)


@needs_gcc
@pytest.mark.parametrize("fast_path", [True, False], ids=["native", "python"])
def test_a_worker_keeps_the_same_books_with_c_and_without(built: Path, echo: tuple[str, int],
                                                          monkeypatch: pytest.MonkeyPatch, fast_path: bool) -> None:
    monkeypatch.setattr(fastpath, "LIBRARY", built)
    report = run_worker(echo, fast_path)
    assert report.fast_path == ("native" if fast_path else "python")
    records, totals = report.records, report.totals
    assert len(records) == 4 and totals["replies"] == sum(r["replies"] for r in records) > 100
    for r in records:
        assert r["errors"] == {} and r["sent"] - r["replies"] == r["unanswered"] in (0, 1), r
        assert r["bytes_sent"] == 21 * r["sent"] and r["bytes_received"] == 21 * r["replies"], r
        assert 0 <= r["latency_mean_us"] <= r["latency_max_us"], r
    assert report.latency["count"] == totals["replies_measured"] < totals["replies"]  # the warm-up's left out
    assert report.latency["clamped"] == 0
    for tl in report.timeline:
        record = next(r for r in records if r["client"] == tl["client"])
        pairs = tl["pairs"]
        assert len(pairs) == min(100, record["replies"] + record["unanswered"]), (len(pairs), record)
        # closed loop: the next request leaves in the turn its reply arrived
        answered = [p for p in pairs if p[1] is not None]
        assert all(answered[i][1] == answered[i + 1][0] for i in range(len(answered) - 1)), answered[:5]
