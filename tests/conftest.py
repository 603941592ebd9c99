"""Test-session rules shared by every test.

- The session runs as its own lab (LAB_NAME=iolabtest-<pid>) with its own
  runs directory, so it never touches a user's runs, and a user's lab never
  confuses it.
- Docker: where the engine is missing, live tests skip with the reason; in
  CI (CI=true or LAB_REQUIRE_DOCKER=1) they fail instead.
- At the end, nothing carrying this session's lab label may remain: if
  anything does, the session fails (and the leftovers are removed).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

os.environ["LAB_NAME"] = f"iolabtest-{os.getpid()}"
RUNS = tempfile.mkdtemp(prefix="iolab-test-runs-")
os.environ["LAB_RUNS_DIR"] = RUNS

_used_docker = False


def docker_required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or \
        os.environ.get("LAB_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="session")
def engine():
    """The Docker engine, or a clear skip (a failure in CI)."""
    global _used_docker
    from lab.engine import Engine
    from lab.errors import EnvironmentProblem
    try:
        eng = Engine()
    except EnvironmentProblem as exc:
        if docker_required():
            pytest.fail(f"CI needs a Docker engine and there is none: {exc}")
        pytest.skip(f"no Docker engine here: {exc}")
    _used_docker = True
    return eng


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _used_docker:
        from lab.engine import Engine
        eng = Engine()
        left = {run: res for run, res in eng.runs().items() if not res.empty}
        if left:
            lines = [f"{run}: " + ", ".join([c.name for c in res.containers] + [n.name for n in res.networks]
                                            + [v.name for v in res.volumes]) for run, res in left.items()]
            print("\nLEAK: lab resources left after the test session:\n  " + "\n  ".join(lines))
            for res in left.values():
                eng.remove(res)
            session.exitstatus = 1
    if session.exitstatus == 0:
        shutil.rmtree(RUNS, ignore_errors=True)
