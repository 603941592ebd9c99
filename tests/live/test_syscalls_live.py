"""What a reply costs, live: `lab run syscalls` once for every model that
declares a cost key, its tracing sidecar's box, and nothing left behind.

One `lab run syscalls --all` (and the reference) makes the evidence for the
whole file (a few seconds of probes per model); while it runs, the engine's
event stream catches each tracing sidecar as it starts, to read its
HostConfig.  A flipped declaration is judged again on the same figures
(lab/checks/cost.py decide()), no second run.  Then a `lab run` killed by
SIGKILL while its sidecar traces: the next lab command removes the run,
sidecar included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from lab.checks import cost
from lab.checks.context import tolerances
from lab.engine import LAB, RUN, SERVICE
from lab.plan import models, scenarios
from lab.run.tracer import KEY

ROOT = Path(__file__).resolve().parents[2]
FLIP = {"eagain_per_reply": {"many": "few", "few": "many"}, "drains_to_eagain": {True: False, False: True},
        "scan_cost": {"per-descriptor": "per-ready", "per-ready": "per-descriptor"},
        "switches_per_reply": {"per-reply": "fewer", "fewer": "per-reply"}}


def lab(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def declaring() -> list[str]:
    keys = set(scenarios.get("syscalls").judges)
    return [m.name for m in models.all_models().values() if keys & set(m.expect)]


class Sidecars:
    """Every tracing sidecar of this lab that starts, inspected as it starts."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.seen, self.runs = engine, [], set()
        self.stream = engine.client.events(decode=True, filters={
            "type": "container", "event": "start", "label": [f"{LAB}={engine.lab}", f"{SERVICE}={KEY}"]})
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        try:
            for event in self.stream:
                try:
                    attrs = self.engine.client.api.inspect_container(event["id"])
                except Exception:  # gone already: the next one will do
                    continue
                self.seen.append(attrs)
                self.runs.add(attrs["Config"]["Labels"][RUN])
                self.started.set()
        except Exception:
            pass  # the stream was closed

    def close(self) -> None:
        self.stream.close()


@pytest.fixture(scope="module")
def cost_run(engine: Any, app_image: str) -> Iterator[dict[str, Any]]:
    """`lab run syscalls` over every declaring target, once; its results.json and the sidecars seen."""
    names = declaring()
    watch = Sidecars(engine)
    try:
        done = lab("run", "syscalls", *[a for m in names for a in ("--model", m)], "--json")
    finally:
        watch.close()
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a claim failed, each named below
    yield {"doc": json.loads(done.stdout), "sidecars": watch.seen, "runs": watch.runs, "models": names}


def test_every_declared_cost_claim_holds(cost_run: dict[str, Any]) -> None:
    verdicts = cost_run["doc"]["checks"]
    wanted = {(m, k) for m in cost_run["models"] for k in models.get(m).expect if k in cost.KEYS}
    assert {(v["model"], v["expect"]) for v in verdicts} == wanted
    failed = [f"{v['model']} {v['expect']}: {v['expected']} -> {v['observed']}" for v in verdicts if v["ok"] is not True]
    assert not failed, failed


def test_a_flipped_declaration_turns_red_on_the_same_evidence(cost_run: dict[str, Any]) -> None:
    flipped = 0
    for v in cost_run["doc"]["checks"]:
        if v["expect"] not in FLIP or v["ok"] is not True:
            continue
        model = models.get(v["model"])
        declared = model.expect[v["expect"]]
        held = cost.decide(v["expect"], declared, v["figures"], tolerances(model))[2]
        red = cost.decide(v["expect"], FLIP[v["expect"]][declared], v["figures"], tolerances(model))[2]
        assert held is True and red is False, f"{v['model']} {v['expect']}: {v['observed']}"
        flipped += 1
    assert flipped >= len(cost_run["models"])


def test_the_sidecar_holds_only_ptrace_on_no_network_in_the_servers_pid_namespace(cost_run: dict[str, Any]) -> None:
    sidecars = cost_run["sidecars"]
    assert len(sidecars) >= len(cost_run["models"]), "a sidecar per traced probe"
    for attrs in sidecars:
        host = attrs["HostConfig"]
        assert host["CapAdd"] == ["SYS_PTRACE"] and host["CapDrop"] == ["ALL"], attrs["Name"]
        assert host["NetworkMode"] == "none" and host["PidMode"].startswith("container:"), attrs["Name"]
        assert not host.get("Privileged") and host["ReadonlyRootfs"] is True, attrs["Name"]
        assert attrs["Config"]["User"] == "10001:10001", attrs["Name"]


def test_nothing_is_left_after_the_run(engine: Any, cost_run: dict[str, Any]) -> None:
    assert cost_run["runs"] and not (cost_run["runs"] & set(engine.runs())), "the run left resources behind"


def test_a_killed_lab_run_leaves_no_sidecar_after_the_next_command(engine: Any, app_image: str) -> None:
    watch = Sidecars(engine)
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", "syscalls", "--model", "epoll"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert watch.started.wait(120), "no tracing sidecar started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        watch.close()
    run = next(iter(watch.runs))
    assert any(u.labels.get(SERVICE) == KEY for u in engine.runs(run)[run].units), "the sidecar was not there"
    down = lab("down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert run not in engine.runs(), "the killed run's sidecar or server is still there"


@pytest.mark.parametrize("args, says", [
    (("run", "syscalls", "--model", "no-such-model"), "unknown"),
    (("run", "no-such-scenario", "--model", "epoll"), "unknown scenario"),
    (("run", "syscalls", "--model", "apache-prefork"), "declares none of"),
    (("run", "syscalls", "--model", "epoll", "--orchestrator", "swarm"), "Swarm mode cannot"),
])
def test_bad_input_is_one_line_and_exit_2(engine: Any, args: tuple[str, ...], says: str) -> None:
    done = lab(*args, timeout=120)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, done.stderr
