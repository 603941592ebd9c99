"""Live tests: real containers on the Docker engine.

Every test here is marked `docker` and needs the session `engine` fixture;
the lab's images are built once per session.  When a live test fails, the
logs of the containers it registered are attached to the report.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from lab import config
from lab.console import say
from lab.plan import compose
from lab.run import images

_watched: list[Any] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/live/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def app_image(engine) -> str:
    return images.ensure_app(engine, say)


@pytest.fixture(scope="session")
def real_image(engine) -> str:
    """The real servers' image (Apache, nginx, PostgreSQL, redis, memcached), made once."""
    topology = compose.load_topology(config.compose_file())
    return images.for_service(engine, topology.service("redis"), say)


@pytest.fixture(scope="session")
def all_checks(engine, app_image) -> dict[str, Any]:
    """`lab check --all`, once a session: test_checks_live.py reads every
    verdict of it, and the tour's own verdicts are compared with it."""
    from tests.live.judged import check
    return check("--all")


@pytest.fixture(scope="session")
def real_checks(real_image, app_image) -> dict[str, Any]:
    """`lab check` of every real server, once a session: their own tests and the
    slow clients' read it."""
    from lab.plan import models
    from tests.live.judged import check
    return check(*sorted(n for n, m in models.all_models().items() if m.kind == "server"), timeout=900)


@pytest.fixture
def watch():
    """Register containers whose logs belong in the report if the test fails."""
    start = len(_watched)
    yield _watched.append
    del _watched[start:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _watched:
        for c in _watched:
            try:
                report.sections.append((f"logs of {c.name}", c.logs(tail=40).decode(errors="replace")))
            except Exception as exc:  # the container may be gone already
                report.sections.append((f"logs of {getattr(c, 'name', c)}", f"(unavailable: {exc})"))


def compose_command() -> str:
    """Compose v2 (`docker compose`) where installed, else v1 (`docker-compose`)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return "docker compose"
    if shutil.which("docker-compose"):
        return "docker-compose"
    pytest.fail("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")


# -- pytest-docker, driven the way this lab needs ---------------------------
# Its default setup (`up --build --wait`) is Compose v2 only and runs outside
# a try block; here setup is empty and the `compose_servers` fixture below
# brings services up inside try/finally and waits on health itself.

PROFILES = "--profile blocking --profile threads"


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return compose_command()


@pytest.fixture(scope="session")
def docker_compose_file(pytestconfig: Any) -> list[str]:
    root = pytestconfig.rootpath
    return [str(root / "compose.yaml"), str(root / "tests" / "live" / "compose.publish.yaml")]


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    import os
    return os.environ["LAB_NAME"].replace("-", "")


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return []


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return [f"{PROFILES} down -v --remove-orphans"]
