"""A busy host makes "not judged", never red (issue 11).

The GIL check on forking needs two free cores: two processes' WORKs must
keep two cores busy.  With two spinning processes on the host meanwhile
the check cannot be judged: its verdict is "not judged: host busy (...)"
with the free cores recorded, after one retry, and `lab check` exits 3.
Without them the same check holds."""

from __future__ import annotations

import subprocess
import sys
from typing import Iterator

import pytest

from tests.live.judged import check, expect_ok

SPIN_S = 240  # a spinner's own bound, should the test die before it stops them
SPIN = f"import time\nend = time.monotonic() + {SPIN_S}\nwhile time.monotonic() < end: pass"
GIL = ("forking", "--scenario", "gil")


@pytest.fixture
def spinners() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-c", SPIN]))
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def test_a_busy_host_leaves_the_gil_check_not_judged(engine, app_image, spinners) -> None:
    doc = check(*GIL, codes=(3,))
    assert all(p.poll() is None for p in spinners), "a spinner ended early: the host was not loaded throughout"
    (v,) = doc["checks"]
    assert v["ok"] is None and v["judged"] is False and doc["not_judged"] == 1, v
    assert v["observed"].startswith("not judged: host busy ("), v["observed"]
    assert v["figures"]["host_busy"] is True
    assert v["figures"]["free_cores"] < v["figures"]["free_cores_needed"]
    assert v["figures"]["retried"]["because"][0].startswith("not judged: host busy")


def test_without_the_load_the_same_check_holds(engine, app_image) -> None:
    doc = check(*GIL, codes=(0, 3))
    (v,) = doc["checks"]
    expect_ok(v, True)
    assert v["figures"]["free_cores"] >= v["figures"]["free_cores_needed"]
    assert doc["exit_code"] == 0
