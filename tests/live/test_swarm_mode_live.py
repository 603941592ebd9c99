"""The lab on Docker Swarm mode, on a single-node swarm made for these tests.

The engine is put in Swarm mode for this module only (tests/live/swarm_mode.py)
and left as it was found, whatever happens.  What one node can show is shown
here, through the command line as a user types it: blocking, threads and
epoll hold what they declare through `--orchestrator swarm` (a chosen set of
scenarios, to keep this lean), `lab compare` writes its report, the client
swarm split into replicas serves the same clients, `lab up` runs services
in the lab's box and `lab down` stops them gracefully, a killed lab's run is
swept by the next command, and `lab down --all` leaves nothing.  Placement
over several nodes, registries and clock offsets are proven at the engine
boundary (tests/unit/test_swarm_orchestrator.py): no second engine can run here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from lab.engine import LAB, RUN
from lab.plan import models, scenarios
from tests.conftest import unavailable
from tests.live import swarm_mode
from tests.live.judged import ROOT, check, expect_ok, lab, run_of

SWARM = ("--orchestrator", "swarm")
MODELS = ("blocking", "threads", "epoll")
SCENARIOS = ("served-at-once", "idle-cpu", "growth", "stalls", "crash")
CASES = [(m, key) for m in MODELS for s in SCENARIOS for key in scenarios.get(s).judges
         if key in models.get(m).expect]


def lab_resources(client: Any, lab_name: str, run: str | None = None) -> list[str]:
    """Every Swarm-mode thing of this test lab (of one run) on the engine."""
    flt = {"label": [f"{LAB}={lab_name}", *([f"{RUN}={run}"] if run else [])]}
    return ([f"service {s.name}" for s in client.services.list(filters=flt)]
            + [f"network {n.name}" for n in client.networks.list(filters=flt) if n.attrs.get("Scope") == "swarm"]
            + [f"config {c.name}" for c in client.configs.list(filters=flt)])


def everything_labelled(client: Any, lab_name: str, run: str | None = None) -> list[str]:
    """Every thing of this test lab (of one run), of either orchestrator:
    services, task and plain containers, networks of both scopes, configs
    and volumes."""
    flt = {"label": [f"{LAB}={lab_name}", *([f"{RUN}={run}"] if run else [])]}
    return (lab_resources(client, lab_name, run)
            + [f"container {c.name}" for c in client.containers.list(all=True, filters=flt, ignore_removed=True)]
            + [f"network {n.name}" for n in client.networks.list(filters=flt) if n.attrs.get("Scope") != "swarm"]
            + [f"volume {v.name}" for v in client.volumes.list(filters=flt)])


@pytest.fixture(scope="module")
def swarm(engine, app_image):
    """A single-node swarm for this module: made if need be, left if made here."""
    try:
        swarm_mode.init(engine.client)
    except docker.errors.APIError as exc:
        unavailable(f"this engine cannot be put in Swarm mode: {exc.explanation}")
    try:
        yield engine.client
    finally:
        try:
            down = lab("down", "--all", *SWARM)
            left = lab_resources(engine.client, engine.lab)
            assert down.returncode == 0 and not left, f"lab down --all left {left}: {down.stderr}"
        finally:
            swarm_mode.leave()


# -- lab check -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checked(swarm) -> dict[str, Any]:
    return check(*MODELS, *[a for s in SCENARIOS for a in ("--scenario", s)], *SWARM)


def test_every_case_is_judged(checked) -> None:
    assert {(v["model"], v["expect"]) for v in checked["checks"]} == set(CASES)
    assert len(CASES) >= 12, CASES


@pytest.mark.parametrize("model, key", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_declared_behaviour_holds_on_swarm_mode(checked, model: str, key: str) -> None:
    for v in [v for v in checked["checks"] if v["model"] == model and v["expect"] == key]:
        expect_ok(v, True)


def test_the_run_says_where_it_ran_and_what_swarm_mode_cannot_enforce(checked) -> None:
    run = Path(os.environ["LAB_RUNS_DIR"]) / checked["run"]
    meta = json.loads((run / "run.json").read_text())
    assert meta["orchestrator"] == "swarm" and meta["params"]["orchestrator"] == "swarm"
    assert any("no-new-privileges" in n for n in meta["orchestrator_notes"]), meta.get("orchestrator_notes")
    # the probes' swarms ran as services of their own; their results came back in their output
    probe = json.loads(next(run.glob("probes/epoll/served-at-once-main.results.json")).read_text())
    assert probe["clock"]["how"] == ["same kernel"] and probe["clock"]["bound_s"] == 0.0
    assert [r["replica"] for r in probe["replicas"]] == ["1/1"]


def test_the_swarm_in_two_replicas_runs_each_client_once(swarm) -> None:
    doc = check("epoll", "--scenario", "served-at-once", "--swarm-replicas", "2", *SWARM)
    (verdict,) = [v for v in doc["checks"] if v["expect"] == "peak_served"]
    expect_ok(verdict, True)
    run = Path(os.environ["LAB_RUNS_DIR"]) / doc["run"]
    probe = json.loads(next(run.glob("probes/epoll/served-at-once-main.results.json")).read_text())
    assert [r["replica"] for r in probe["replicas"]] == ["1/2", "2/2"]
    clients = [c["client"] for c in probe["connections"]]
    assert sorted(clients) == list(range(1, probe["summary"]["clients"] + 1)), clients  # once each
    assert sum(r["clients"] for r in probe["replicas"]) == probe["summary"]["clients"] >= 3


# -- lab compare ---------------------------------------------------------------------------

def test_compare_epoll_and_threads_on_swarm_mode(swarm, engine) -> None:
    done = lab("compare", "--models", "epoll,threads", "--repeat", "1", "--duration", "0.5", "--no-native",
               "--scenario", "classic,pingpong", *SWARM, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    run_dir = sorted(Path(os.environ["LAB_RUNS_DIR"]).glob("*-compare-2-models-*"))[-1]
    for name in ("results.json", "results.csv", "report.html", "report.md", "plots/timeline-classic.svg"):
        assert (run_dir / name).stat().st_size > 0, name
    results = json.loads((run_dir / "results.json").read_text())
    assert results["errors"] == [] and results["params"]["orchestrator"] == "swarm"
    assert results["environment"]["engine"]["orchestrator"] == "swarm"
    assert [n["manager"] for n in results["environment"]["engine"]["nodes"]] == [True]
    for m in ("epoll", "threads"):
        got = results["models"][m]["repeats"][0]["workloads"]
        assert got["pingpong"]["swarm"]["summary"]["replies"] > 0, got["pingpong"]
        assert got["pingpong"]["server_cpu"]["source"] == "host", got["pingpong"]["server_cpu"]  # read here
        assert got["classic"]["replies_per_client"], got["classic"]
    assert not lab_resources(engine.client, engine.lab), "compare left Swarm-mode resources"


# -- lab up, lab down, and what a killed lab leaves ---------------------------------------------

def test_up_runs_boxed_services_and_down_stops_them_gracefully(swarm, engine) -> None:
    up = lab("up", "threads", "--duration", "30", "--swarm-replicas", "2", "--name", "boxed", *SWARM)
    assert up.returncode == 0, up.stderr
    run = up.stdout.split("(run ", 1)[1].split(",", 1)[0]
    try:
        services = {s.attrs["Spec"]["Labels"]["org.iolab.service"]: s.attrs["Spec"]
                    for s in swarm.services.list(filters={"label": f"{RUN}={run}"})}
        assert set(services) == {"threads", "swarm"}
        assert services["swarm"]["Mode"]["Replicated"]["Replicas"] == 2
        for name, spec in services.items():
            c, limits = spec["TaskTemplate"]["ContainerSpec"], spec["TaskTemplate"]["Resources"]["Limits"]
            assert c["User"] == "10001:10001" and c["ReadOnly"] and c["CapabilityDrop"] == ["ALL"], name
            assert c["Init"] and [u["Name"] for u in c["Ulimits"]] == ["nofile"], name
            assert limits["Pids"] > 0 and limits["MemoryBytes"] > 0 and limits["NanoCPUs"] > 0, name
            assert spec["EndpointSpec"]["Mode"] == "dnsrr", name
            assert spec["TaskTemplate"]["LogDriver"]["Options"]["max-size"], name
        net = next(n for n in swarm.networks.list(filters={"label": f"{RUN}={run}"}))
        assert net.attrs["Driver"] == "overlay" and net.attrs["Internal"] is True
        status = json.loads(lab("status", "--json", *SWARM).stdout)
        mine = next(r for r in status["runs"] if r["run"] == run)
        assert {c["service"]: c["health"] for c in mine["containers"]}["threads"] == "healthy"
    finally:
        down = lab("down", run, *SWARM)
    assert down.returncode == 0 and f"removed run {run}" in down.stdout, down.stderr
    folder = Path(os.environ["LAB_RUNS_DIR"]) / run
    stops = [json.loads(line) for line in (folder / "logs" / "threads.log").read_text().splitlines()
             if '"ev":"stop"' in line]
    assert [e["reason"] for e in stops] == ["SIGTERM"], stops  # SIGTERM first, then the grace period
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "removed" and meta["orchestrator"] == "swarm"
    assert not [s for s in swarm.services.list(filters={"label": f"{RUN}={run}"})]


def wait_for_task_start(client: Any, lab_name: str, timeout: float = 120) -> str:
    """Block until a task container of this test lab starts; its run id (the engine's events)."""
    stream = client.events(decode=True, filters={"type": "container", "event": "start",
                                                 "label": f"{LAB}={lab_name}"})
    timer = threading.Timer(timeout, stream.close)
    timer.start()
    try:
        for event in stream:
            return str(event["Actor"]["Attributes"][RUN])
    except Exception:  # the timer closed the stream
        pass
    finally:
        timer.cancel()
        stream.close()
    pytest.fail(f"no task of this lab started within {timeout}s")


def test_a_killed_lab_is_swept_by_the_next_command(swarm, engine) -> None:
    """A `lab check --orchestrator swarm` killed mid-run: the next lab command,
    whatever its flags, removes its services, task containers and network."""
    proc = subprocess.Popen([sys.executable, "-m", "lab", "check", "threads", "--scenario", "growth", *SWARM],
                            cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={k: v for k, v in os.environ.items() if k != "LAB_ORCHESTRATOR"})
    try:
        run = wait_for_task_start(swarm, engine.lab)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        proc.wait()
    assert swarm.services.list(filters={"label": f"{RUN}={run}"}), "the killed run should still be there"
    status = lab("status", "--orchestrator", "local")
    assert status.returncode == 0 and f"removed dead run {run} (its lab process {proc.pid} is gone)" in status.stderr
    assert not everything_labelled(swarm, engine.lab, run)


# -- one view: looking and removing need no --orchestrator ---------------------------------------------

def test_a_swarm_mode_run_is_seen_and_removed_without_the_flag(swarm, engine) -> None:
    up = lab("up", "epoll", "--duration", "60", *SWARM)
    run = run_of(up)
    try:
        status = json.loads(lab("status", "--json").stdout)
        mine = next((r for r in status["runs"] if r["run"] == run), None)
        assert mine and mine["orchestrator"] == "swarm", status
        assert {c["service"] for c in mine["containers"]} == {"epoll", "swarm"}
        shown = lab("status")
        assert run in shown.stdout and "swarm" in shown.stdout, shown.stdout
    finally:
        down = lab("down", "--all", env={"LAB_ORCHESTRATOR": "local"})
    assert down.returncode == 0, down.stderr
    assert f"removed run {run} (swarm): 2 services, 2 containers, 1 network" in down.stdout, down.stdout
    assert not everything_labelled(swarm, engine.lab)  # at once: lab down waited for the task containers


def test_a_local_run_is_removed_with_swarm_mode_named(swarm, engine) -> None:
    run = run_of(lab("up", "epoll", "--duration", "60", "--orchestrator", "local"))
    status = json.loads(lab("status", "--json", env={"LAB_ORCHESTRATOR": "swarm"}).stdout)
    assert next(r for r in status["runs"] if r["run"] == run)["orchestrator"] == "local"
    down = lab("down", "epoll", env={"LAB_ORCHESTRATOR": "swarm"})  # by model name
    assert down.returncode == 0 and f"removed run {run} (local): 2 containers" in down.stdout, down.stdout
    assert not everything_labelled(swarm, engine.lab)


def test_logs_of_a_swarm_mode_run_need_no_flag(swarm, engine) -> None:
    run = run_of(lab("up", "epoll", "--duration", "60", *SWARM))
    try:
        logs = lab("logs", "epoll", "--run", run, "--raw")
        assert logs.returncode == 0 and '"ev":"start"' in logs.stdout, logs.stderr
    finally:
        assert lab("down", run).returncode == 0


def test_plain_stack_deploy_runs_a_model_and_the_swarm_with_no_lab(swarm, engine, app_image) -> None:
    """stack.yaml, as docs/swarm-mode.md shows it: `docker stack deploy` alone; the
    swarm's two replicas end by themselves, each having been answered; the
    stack's services carry the lab's labels, so `lab down --all` finds them."""
    import time
    stack = f"{engine.lab.replace('-', '')}stack"
    env = {**os.environ, "LAB_MODEL": "epoll", "LAB_IMAGE": app_image, "LAB_DURATION": "3", "LAB_CLIENTS": "4",
           "LAB_SWARM_REPLICAS": "2"}
    done = subprocess.run(["docker", "stack", "deploy", "-c", str(ROOT / "stack.yaml"), "--resolve-image", "never",
                           stack], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    try:
        service = swarm.services.get(f"{stack}_swarm")
        deadline = time.monotonic() + 120  # Swarm sends no task events: its tasks' state, polled, bounded
        while not (len(tasks := service.tasks()) == 2 and all(t["Status"]["State"] == "complete" for t in tasks)):
            assert time.monotonic() < deadline, [t["Status"] for t in tasks]
            time.sleep(0.2)
        events = [json.loads(line) for line in b"".join(service.logs(stdout=True, stderr=False)).splitlines()
                  if line.startswith(b"{")]
        dones = [e for e in events if e["ev"] == "done"]
        assert len(dones) == 2 and all(e["ok"] and e["replies"] > 0 for e in dones), dones
        assert sorted(e["connected"] for e in dones) == [2, 2]  # four clients, two each
        status = json.loads(lab("status", "--json", *SWARM).stdout)
        assert any(r["run"] == "stack" for r in status["runs"]), status
    finally:
        down = lab("down", "--all", *SWARM)
    assert down.returncode == 0 and "removed run stack" in down.stdout, down.stdout + down.stderr
    assert not swarm.services.list(filters={"label": "com.docker.stack.namespace=" + stack})


def test_down_all_leaves_nothing(swarm, engine) -> None:
    stray = swarm.configs.create(name=f"{engine.lab}-stray", data=b"x", labels={LAB: engine.lab, RUN: "compose"})
    done = lab("down", "--all", *SWARM)
    assert done.returncode == 0 and "removed run compose" in done.stdout, done.stdout + done.stderr
    with pytest.raises(docker.errors.NotFound):
        swarm.configs.get(stray.id)
    assert not lab_resources(swarm, engine.lab)
