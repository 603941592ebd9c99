"""The tools container: real clients (nc, curl, wrk, hey, ab) on a run's
network, in the lab's box, bounded, and gone afterwards.  Each load tool
runs against one model and must report replies, none of them failures."""

from __future__ import annotations

import os
import re
import subprocess
import time

import docker.errors
import pytest

from lab.console import say
from lab.engine import LAB, ROLE, RUN, SERVICE
from lab.run import tools
from lab.run.live import LiveRun

URL = "http://server:12345/hello"


@pytest.fixture(scope="module")
def epoll(engine, app_image):
    """An epoll server on a run's network (no port published anywhere)."""
    with LiveRun(engine, "test", "tools", say=say) as live:
        live.wait_healthy(live.start("epoll", command=["python3", "/srv/epoll/server.py", "--trace=off"]))
        yield live


def test_wrk_reports_replies(epoll) -> None:
    got = tools.run(epoll, ["wrk", "-t1", "-c4", "-d1s", URL], timeout=30)
    assert got.code == 0, got
    done = re.search(r"(\d+) requests in", got.text)
    assert done and int(done.group(1)) > 0, got.text
    assert "Non-2xx" not in got.text and "Socket errors" not in got.text, got.text


def test_hey_reports_replies(epoll) -> None:
    got = tools.run(epoll, ["hey", "-n", "200", "-c", "4", URL], timeout=60)
    assert got.code == 0, got
    assert re.search(r"\[200\]\s+200 responses", got.text), got.text
    assert "Error distribution" not in got.text, got.text


def test_ab_reports_replies(epoll) -> None:
    got = tools.run(epoll, ["ab", "-q", "-n", "200", "-c", "4", URL], timeout=60)
    assert got.code == 0, got
    assert re.search(r"Complete requests:\s+200\b", got.text), got.text
    assert re.search(r"Failed requests:\s+0\b", got.text), got.text


def test_the_tools_container_is_boxed_labelled_and_removed(epoll, engine) -> None:
    """From inside: no root, no capabilities, no new privileges, a read-only
    root; from the engine's events: the run's labels, and removed at the end."""
    since = time.time() - 1
    got = tools.run(epoll, ["sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
                                        "touch /probe 2>/dev/null && echo writable || echo read-only"],
                    timeout=20)
    assert got.code == 0, got
    assert got.text.split() == ["10001", "CapEff:", "0000000000000000", "NoNewPrivs:", "1", "read-only"], got.text
    seen = {}
    events = engine.client.events(since=since, until=time.time() + 1, decode=True, filters={
        "type": "container", "label": [f"{RUN}={epoll.id}", f"{SERVICE}=tools"]})
    for event in events:
        seen.setdefault(event["status"], event["Actor"]["Attributes"])
    assert {"create", "start", "die", "destroy"} <= set(seen), sorted(seen)
    assert seen["create"][LAB] == engine.lab and seen["create"][ROLE] == "tools"
    assert not [c for c in epoll.resources().units if c.labels.get(SERVICE) == "tools"]


def test_a_command_that_outlives_its_timeout_is_stopped(epoll) -> None:
    began = time.monotonic()
    got = tools.run(epoll, ["sleep", "60"], timeout=1)
    assert got.timed_out and got.code == tools.TIMED_OUT, got
    assert time.monotonic() - began < 30, "the timeout did not bound the command"


def test_nc_gets_its_input_and_the_output_is_kept_in_the_run_directory(epoll) -> None:
    got = tools.run(epoll, ["nc", "-q", "1", "server", "12345"], timeout=20, stdin=b"one\ntwo\n")
    assert (got.code, got.stdout) == (0, b"one\ntwo\n"), got
    logs = sorted((epoll.dir.path / "logs").glob("tools-*.log"))
    assert any(b"$ nc -q 1 server 12345\n# exit 0\none\ntwo\n" in f.read_bytes() for f in logs)


def test_plain_compose_builds_native_from_the_labs_images_and_runs_tools(engine, app_image, tmp_path) -> None:
    """What a Compose user does once the lab has made its images: build the
    native image (FROM the lab's tools and base), start it, and talk to it
    with `compose run tools`; no lab code involved."""
    from lab import config
    from lab.plan import compose as lab_compose
    from lab.run import images

    from .conftest import compose_command
    topology = lab_compose.load_topology(config.compose_file())
    base = images.ensure_base(engine, say)
    images.for_service(engine, topology.service("tools"), say)  # iolab/tools:SUITE exists from here
    name = f"iolab-test/native:{engine.lab}"
    env = {**os.environ, "LAB_BASE_IMAGE": base, "LAB_NATIVE_IMAGE": name, "LAB_RUN": "compose"}
    project = f"{engine.lab.replace('-', '')}tools"
    run = f"{compose_command()} -p {project} --profile native --profile tools"

    def sh(cmd: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(f"{run} {cmd}", shell=True, cwd=config.ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)

    try:
        built = sh("build native")
        assert built.returncode == 0, built.stderr[-2000:]
        assert engine.client.images.get(name).labels.get("org.iolab.image") == engine.lab
        up = sh("up -d native")
        assert up.returncode == 0, up.stderr[-2000:]
        server = engine.client.containers.list(filters={"label": f"com.docker.compose.project={project}"})[0]
        engine.wait_healthy(engine.unit(server), timeout=60)
        got = sh("run -T --rm tools sh -c 'printf \"via compose\\n\" | nc -q 1 server 12345'", timeout=120)
        assert (got.returncode, got.stdout) == (0, "via compose\n"), got.stderr[-2000:]
    finally:
        sh("down -v --remove-orphans")
        try:
            engine.client.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass
