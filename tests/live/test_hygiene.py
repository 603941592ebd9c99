"""Nothing leaks, every container is boxed, and bad situations get one clear line.

The interrupted-run tests use a topology whose health check never passes, so
`lab up` is reliably in the middle of its run (waiting for health) when the
test interrupts it; the moment is taken from the engine's own event stream.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import docker.errors
import pytest

from lab.engine import IMAGE_LAB, IMAGE_RUN, LAB, ROLE, RUN

ROOT = Path(__file__).resolve().parents[2]


def lab_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lab", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def lab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture
def never_healthy(tmp_path: Path) -> dict[str, str]:
    """A copy of compose.yaml whose servers never pass their health check
    (its build context made absolute: the copy lives elsewhere)."""
    text = (ROOT / "compose.yaml").read_text().replace(":3039 00000000", ":FFFF 00000000")
    assert ":FFFF 00000000" in text, "compose.yaml's health check changed: update this fixture"
    text = text.replace("context: ./services", f"context: {ROOT / 'services'}")
    f = tmp_path / "compose.yaml"
    f.write_text(text)
    return {"LAB_COMPOSE": str(f)}


def wait_for_container_start(engine, timeout: float = 120) -> str:
    """Block until a container of this test lab starts; return its run id."""
    stream = engine.client.events(decode=True, filters={
        "type": "container", "event": "start", "label": f"{LAB}={engine.lab}"})
    timer = threading.Timer(timeout, stream.close)
    timer.start()
    ended = "the event stream ended"
    try:
        for event in stream:
            return event["Actor"]["Attributes"][RUN]
    except Exception as exc:  # the timer closed the stream under us, or the engine went away
        ended = f"the event stream stopped: {exc!r}"
    finally:
        timer.cancel()
        stream.close()
    pytest.fail(f"no lab container started within {timeout}s ({ended})")


def test_every_lab_container_is_boxed(engine, app_image) -> None:
    done = lab("up", "threads", "--duration", "60", "--name", "boxed")
    assert done.returncode == 0, done.stderr
    try:
        run = next(r for r, res in engine.runs().items() if any(c.name.endswith("boxed-threads")
                                                                for c in res.units))
        containers = [u.raw for u in engine.runs(run)[run].units]
        assert {c.labels["org.iolab.service"] for c in containers} == {"threads", "swarm"}
        for net in engine.runs(run)[run].networks:
            net.raw.reload()
            assert net.raw.attrs["Internal"] is True, f"{net.name} has a way out of the host"
        for c in containers:
            host = c.attrs["HostConfig"]
            assert c.attrs["Config"]["User"] not in ("", "0", "root"), c.name
            assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd"), c.name
            assert "no-new-privileges:true" in host["SecurityOpt"], c.name
            assert host["ReadonlyRootfs"] is True and "/tmp" in host["Tmpfs"], c.name
            assert host["Memory"] > 0 and host["NanoCpus"] > 0 and host["PidsLimit"] > 0, c.name
            assert [u["Name"] for u in host["Ulimits"]] == ["nofile"], c.name
            assert not host.get("Privileged"), c.name
            assert not host.get("PortBindings"), f"{c.name} publishes a port nobody asked for"
            mounts = [m.get("Source", "") + m.get("Name", "") for m in c.attrs["Mounts"]]
            assert not any("docker.sock" in m for m in mounts), c.name
            assert host["LogConfig"]["Config"].get("max-size"), f"{c.name} has unbounded logs"
            assert host["Init"] is True, c.name
    finally:
        lab("down", "--all")


@pytest.mark.parametrize("how, code", [(signal.SIGINT, 130), (signal.SIGTERM, 130)])
def test_interrupting_up_removes_what_it_started(engine, app_image, never_healthy, how, code) -> None:
    proc = lab_process("up", "threads", env=never_healthy)
    try:
        run = wait_for_container_start(engine)
        proc.send_signal(how)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "interrupted" in err
    assert run not in engine.runs(), "the interrupted run left resources behind"
    run_json = Path(os.environ["LAB_RUNS_DIR"]) / run / "run.json"
    assert '"status": "interrupted"' in run_json.read_text()


def test_a_killed_lab_is_cleaned_up_by_the_next_command(engine, app_image, never_healthy) -> None:
    proc = lab_process("up", "threads", env=never_healthy)
    try:
        run = wait_for_container_start(engine)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert run in engine.runs(), "the killed run should still have its resources"
    status = lab("status")
    assert status.returncode == 0
    assert f"removed dead run {run} (its lab process {proc.pid} is gone)" in status.stderr
    assert run not in engine.runs()


def test_a_name_taken_by_a_foreign_container_is_refused(engine, app_image) -> None:
    foreign = engine.client.containers.create(app_image, ["true"], name=f"{engine.lab}-taken-threads")
    try:
        done = lab("up", "threads", "--name", "taken")
        assert done.returncode == 2
        assert "is taken by a container the lab did not make" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        foreign.remove(force=True)


def test_base_image_failure_says_which_step_failed(engine) -> None:
    env = {"LAB_BASE_IMAGE": "iolab-test/no-such-image:1", "LAB_BOOTSTRAP_SUITE": "no-such-suite"}
    done = lab("up", "threads", env=env)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "no base image: the pull of iolab-test/no-such-image:1 failed" in last
    assert "and the bootstrap failed (mmdebstrap exited" in last
    with pytest.raises(docker.errors.ImageNotFound):
        engine.client.images.get("iolab-test/no-such-image:1")


def test_every_image_the_lab_makes_is_labelled(engine, app_image) -> None:
    """`lab down --images` finds images by label only: the Debian families,
    the application image and the native image all carry the lab's labels."""
    from lab.console import say
    from lab.run import images
    from lab.run.live import LiveRun

    with LiveRun(engine, "test", "images", say=say) as live:
        made = {"tools": live.image_for("tools"), "native": live.image_for("native"),
                "app": live.image_for("swarm")}
    base = images.ensure_base(engine, say)
    if images.family_of(base):  # a base pulled from a registry is not the lab's to label
        made["base"] = base
    labelled = {i.id for i in engine.images(every_lab=True)}
    for role, name in made.items():
        image = engine.client.images.get(name)
        assert image.labels.get(ROLE) == role and image.labels.get(IMAGE_LAB) and image.labels.get(IMAGE_RUN), \
            f"{name}: {image.labels}"
        assert image.id in labelled, f"{name} is not found by its labels"


def test_a_model_whose_base_lacks_what_it_needs_is_refused_in_one_line(engine, app_image) -> None:
    """gevent needs gevent; a base without it (python:3.11-slim, or here the
    lab's base with its modules label emptied) gets exit 2 and one line that
    says which base to use, before any container starts."""
    import io

    from lab.console import say
    from lab.run import images

    base = images.ensure_family(engine, "base", say)
    plain = f"iolab-test/plain-base:{engine.lab}"
    dockerfile = f"FROM {base}\nLABEL {images.MODULES}=\"\" {IMAGE_LAB}={engine.lab}\n".encode()
    engine.client.images.build(fileobj=io.BytesIO(dockerfile), tag=plain, rm=True, pull=False)
    try:
        done = lab("up", "gevent", "--no-swarm", env={"LAB_BASE_IMAGE": plain})
        assert done.returncode == 2, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert f"gevent needs gevent, which the base image {plain} lacks" in last, done.stderr
        assert f"LAB_BASE_IMAGE=iolab/base:{images.suite()}" in last
        assert not [c for res in engine.runs().values() for c in res.units
                    if c.labels.get("org.iolab.service") == "gevent"], "a container was started"
    finally:  # the app image built on the plain base (this lab's, without modules), then the base
        for image in engine.images():
            if image.labels.get(ROLE) == "app" and image.labels.get(images.MODULES) == "":
                engine.client.images.remove(image.id, force=True)
        engine.client.images.remove(plain, force=True)


def test_down_all_removes_compose_made_resources_too(engine, app_image) -> None:
    """--all: every run of this lab, also one plain Compose made; another
    lab's resources are not this lab's to remove."""
    net = engine.client.networks.create(f"{engine.lab}-stray", labels={LAB: engine.lab, RUN: "compose"})
    other = engine.client.networks.create(f"{engine.lab}-other-lab",
                                          labels={LAB: f"{engine.lab}-other", RUN: "compose"})
    try:
        done = lab("down", "--all")
        assert done.returncode == 0 and "removed run compose" in done.stdout
        with pytest.raises(docker.errors.NotFound):
            engine.client.networks.get(net.id)
        assert engine.client.networks.get(other.id).name == other.name, "down --all removed another lab's network"
    finally:
        for n in (net, other):
            try:
                n.remove()
            except docker.errors.NotFound:
                pass


def test_logs_are_bounded_and_never_hold_a_container_up(engine, app_image, monkeypatch) -> None:
    """A container that writes 60 MB as fast as it can, with nobody reading:
    it is not held up (the engine's log driver takes everything, rotating at
    compose.yaml's max-size), and the log the lab keeps is capped."""
    from lab.console import say
    from lab.run import rundir as runs
    from lab.run.live import LiveRun

    monkeypatch.setattr(runs, "LOG_CAP", 1 << 20)
    flood = ["python3", "-c", "import sys\nline = 'x' * 99 + '\\n'\nfor _ in range(600_000): sys.stdout.write(line)"]
    with LiveRun(engine, "test", "logs", say=say) as live:
        c = live.start("swarm", command=flood)
        status = c.wait(120)  # bounded: it must finish on its own
        assert status == 0
        live.capture_logs()
        kept = (live.dir.path / "logs" / "swarm.log").read_bytes()
    assert len(kept) <= (1 << 20) + 100 and b"[log cut at 1048576 bytes of " in kept[-60:]


def test_interrupting_check_removes_what_it_started(engine, app_image) -> None:
    proc = lab_process("check", "threads")
    try:
        run = wait_for_container_start(engine)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert run not in engine.runs(), "the interrupted check left resources behind"
