"""Test-session rules shared by every test.

- The session runs as its own lab (LAB_NAME=iolabtest-<pid>) with its own
  runs directory, so it never touches a user's runs, and a user's lab never
  confuses it.
- Docker: where the engine is missing, live tests skip with the reason; in
  CI (CI or LAB_REQUIRE_DOCKER set to 1, true or yes) they fail instead.
  Any other test that cannot run here (no root, no namespaces, a low
  descriptor limit) calls `unavailable(reason)`: a skip on a laptop, a
  failure in CI, where a skip would hide a test nobody ran.
- At the end, nothing carrying this session's lab label may remain: if
  anything does, the session fails (and the leftovers are removed).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import NoReturn

import pytest

# A suite started in the background (`&` in a script, nohup) has SIGINT
# ignored, and every lab it starts would inherit that: the Ctrl-C tests need
# the lab to see SIGINT as a user's terminal sends it.
signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ["LAB_NAME"] = f"iolabtest-{os.getpid()}"
RUNS = tempfile.mkdtemp(prefix="iolab-test-runs-")
os.environ["LAB_RUNS_DIR"] = RUNS

_used_docker = False


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def docker_required() -> bool:
    """CI (or a user who asks): every test must run, none may skip."""
    return _truthy("CI") or _truthy("LAB_REQUIRE_DOCKER")


def unavailable(reason: str) -> NoReturn:
    """This test cannot run here: skip with the reason, or fail in CI."""
    if docker_required():
        pytest.fail(f"CI must run this test, and it cannot here: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine():
    """The Docker engine, or a clear skip (a failure in CI)."""
    global _used_docker
    from lab.engine import connect
    from lab.errors import EnvironmentProblem
    try:
        eng = connect("local")
    except EnvironmentProblem as exc:
        if docker_required():
            pytest.fail(f"CI needs a Docker engine and there is none: {exc}")
        pytest.skip(f"no Docker engine here: {exc}")
    _used_docker = True
    return eng


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.live import swarm_mode  # a swarm this session made must not outlive it, whatever failed
    for line in swarm_mode.leave():
        print(f"\n{line} (at the end of the session: its fixture did not)")
    if _used_docker:
        from lab.engine import connect
        eng = connect("local")
        left = {run: res for run, res in eng.runs().items() if not res.empty}
        if left:
            lines = [f"{run}: " + ", ".join([c.name for c in res.units] + [n.name for n in res.networks]
                                            + [v.name for v in res.volumes]) for run, res in left.items()]
            print("\nLEAK: lab resources left after the test session:\n  " + "\n  ".join(lines))
            for res in left.values():
                eng.remove(res)
            session.exitstatus = 1
    if session.exitstatus == 0:
        shutil.rmtree(RUNS, ignore_errors=True)
