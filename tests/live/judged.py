"""Reading `lab check --json` in live tests: a verdict is held (True),
failed (False) or not judged (None).  A verdict left not judged because
the host was busy (other work on a shared machine) proves nothing either
way: the test that needed it stops there, saying so; a skip on a
developer's machine, a failure in CI (as with a missing Docker engine),
where a busy host means the run itself must be looked at."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import docker_required

ROOT = Path(__file__).resolve().parents[2]


def lab(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


UP_RUN = re.compile(r"\(run (\S+), healthy after")


def run_of(done: subprocess.CompletedProcess[str]) -> str:
    """The run `lab up` started, after asserting it did."""
    found = UP_RUN.search(done.stdout)
    assert done.returncode == 0 and found, f"lab up exited {done.returncode}: {done.stderr or done.stdout}"
    return found.group(1)


def check(*args: str, codes: tuple[int, ...] = (0, 1, 3), **kw: Any) -> dict[str, Any]:
    """`lab check ... --json`: its checks.json, after asserting its exit code."""
    done = lab("check", *args, "--json", **kw)
    assert done.returncode in codes, f"exit {done.returncode}: {done.stderr[-2000:]}"
    doc = json.loads(done.stdout)
    doc["exit_code"] = done.returncode
    return doc


def host_busy(v: dict[str, Any]) -> bool:
    return v["ok"] is None and bool(v["figures"].get("host_busy"))


def inconclusive(v: dict[str, Any]) -> None:
    """Stop the test: the host was too busy for this verdict to say anything."""
    why = f"{v['model']} {v['check']}: {v['observed']} (free cores {v['figures'].get('free_cores')})"
    if docker_required():
        pytest.fail(f"the host was too busy to judge, in CI: {why}")
    pytest.skip(f"the host was too busy to judge: {why}")


def expect_ok(v: dict[str, Any], ok: bool) -> None:
    """``v`` must be ``ok`` (True or False, exactly); a host-busy verdict is inconclusive."""
    if host_busy(v):
        inconclusive(v)
    assert v["ok"] is ok, (f"{v['model']} {v['check']}: expected ok={ok}, got {v['ok']}; "
                           f"expected {v['expected']}, observed {v['observed']}; "
                           f"figures {json.dumps(v['figures'])[:800]}")
