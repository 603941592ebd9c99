"""Coordinated omission, end to end: the swarm itself is stalled.

The worker process is stopped (SIGSTOP) for a while during an open-loop run
against a healthy server, then continued.  The requests that fell due
meanwhile leave late, all at once, and are answered at once; the swarm must
count each from the time it was *due*, so the stall appears in the
latencies and in the timeline.  Timed from the actual write, they would all
look fast and this test fails (tests/unit/test_swarm_worker.py proves the
same without processes).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from .model_process import ModelProcess
from .test_swarm_local import Swarm, check_shape

STALL = 0.4  # seconds the worker is held: the stimulus, not a synchronisation


@pytest.fixture
def epoll():
    proc = ModelProcess("epoll")
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def test_a_stopped_swarm_worker_shows_in_the_latency(tmp_path: Path, epoll: ModelProcess) -> None:
    swarm = Swarm(tmp_path / "out", "--target", f"127.0.0.1:{epoll.port}", "--clients", "1",
                  "--workers", "1", "--pattern", "rate", "--rate", "200", "--duration", "2",
                  "--trace", "conn")
    try:
        swarm.wait_for(lambda e: e["ev"] == "connect")
        worker = next(e["pid"] for e in swarm.events if e["ev"] == "connect")
        assert worker != swarm.proc.pid
        stopped = time.monotonic()
        os.kill(worker, signal.SIGSTOP)
        time.sleep(STALL)
        resumed = time.monotonic()
        os.kill(worker, signal.SIGCONT)
        code, doc = swarm.finish(20)
    finally:
        swarm.kill()
    assert code == 0 and doc is not None, swarm.stderr
    check_shape(doc)
    held = resumed - stopped
    lat = doc["summary"]["latency"]
    assert lat["max_us"] >= (held - 0.05) * 1e6, f"the {held:.3f} s stall is missing: {lat}"
    # a fifth of the requests fell due during the stall, the latest of them
    # waited up to its whole length: the top tenth waited over half of it
    assert lat["p90_us"] >= held / 4 * 1e6, lat
    pairs = [p for c in doc["timeline"]["conns"] for p in c["pairs"]]
    # every request due while the worker was stopped went out after it resumed,
    # and is timed from when it was due: its latency covers the rest of the stall
    due_meanwhile = [(s, r) for s, r in pairs if stopped + 0.01 < s < resumed - 0.01]
    assert len(due_meanwhile) >= 0.8 * held * 200, (len(due_meanwhile), held)
    assert all(r is not None and r >= resumed - 0.005 for s, r in due_meanwhile), due_meanwhile[:5]
