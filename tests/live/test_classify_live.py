"""`lab classify` against live containers: every lab model (the Python
models and the native reference) and every real server must be classified
as its model.yaml declares, though classify never reads it.

The verb itself runs, twice at once over halves of the list (the hold probe
judges by whether a request is answered at all, not by how fast); each
target gets a fresh server of its own, seconds of probing, and is removed.
Then the verb by address: a server `lab up` started, the same server through
--network, a container the lab did not start (refused without --external,
classified with it, and from timing alone when its container cannot be
found), and the bad input that must exit 2 with one line.  The zoo of
third-party servers has its own module (test_zoo_classify_live.py).
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lab.engine import SERVICE
from lab.observe import classify
from lab.plan import models
from tests.live.judged import lab, run_of

TARGETS = sorted(models.all_models())


def classify_many(names: list[str]) -> dict[str, Any]:
    done = lab("classify", *names, "--json", timeout=1200)
    assert done.returncode in (0, 1, 3), done.stderr[-2000:]
    return {t["target"]: t for t in json.loads(done.stdout)["targets"]}


@pytest.fixture(scope="module")
def every_target(engine, app_image, real_image) -> dict[str, Any]:
    with ThreadPoolExecutor(2) as pool:
        parts = pool.map(classify_many, [TARGETS[0::2], TARGETS[1::2]])
    return {k: v for part in parts for k, v in part.items()}


@pytest.mark.parametrize("name", TARGETS)
def test_every_target_is_classified_as_it_declares(every_target: dict[str, Any], name: str) -> None:
    found = every_target[name]
    cls, n = classify.declared(models.get(name))
    assert found["agrees"] is True and (found["declared"] or {}).get("class") == cls, (
        f"{name}: inferred {found['summary']} ({found['confidence']}), declared {cls} {n or ''}\n  "
        + "\n  ".join(found["evidence"]))
    assert found["confidence"] == "high", found["evidence"]


@pytest.fixture(scope="module")
def redis_up(engine, real_image):
    """A redis that `lab up` started, as a user would have it running."""
    done = lab("up", "redis", "--no-swarm", "--name", "cl-redis", timeout=300)
    run = run_of(done)
    try:
        res = engine.runs(run)[run]
        unit = next(u for u in res.units if u.labels.get(SERVICE) == "redis")
        yield {"run": run, "unit": unit, "network": res.networks[0].name, "ip": unit.state().ip}
    finally:
        assert lab("down", run).returncode == 0


def classified(*argv: str, code: int = 0) -> dict[str, Any]:
    done = lab("classify", *argv, "--json", timeout=300)
    assert done.returncode == code, done.stderr[-1500:]
    doc = json.loads(done.stdout)
    assert doc["schema"] == "iolab.classify/1" and len(doc["targets"]) == 1
    return doc["targets"][0]


def test_a_running_lab_server_by_its_name(redis_up: dict[str, Any]) -> None:
    got = classified(f"{redis_up['unit'].name}:12345", "--protocol", "redis")
    assert (got["cls"], got["confidence"]) == ("event-loop", "high"), got["evidence"]
    assert got["declared"] is None and got["observed"]["table"] is True


def test_the_same_server_on_its_network_by_its_alias(redis_up: dict[str, Any]) -> None:
    got = classified("server:12345", "--network", redis_up["network"], "--protocol", "redis")
    assert got["cls"] == "event-loop" and got["observed"]["table"], got["evidence"]


def test_bad_input_is_one_line_and_exit_2(redis_up: dict[str, Any]) -> None:
    name = redis_up["unit"].name
    for argv, message in [
        ([f"{name}:12345", "--protocol", "http"], "did not answer one complete http request"),  # redis hangs up
        ([f"{name}:1", "--protocol", "redis"], "it refused the connection"),  # nothing listens there
        (["192.0.2.1:12345"], "is not something this lab started"),  # never probed: no --external
    ]:
        done = lab("classify", *argv, timeout=300)
        errors = [line for line in done.stderr.splitlines() if line.startswith("lab: error:")]
        assert done.returncode == 2 and len(errors) == 1 and message in errors[0], (argv, done.stderr[-800:])


def test_a_container_the_lab_did_not_start_needs_external(real_image: str, redis_up: dict[str, Any]) -> None:
    """A redis in a plain container on a plain network (made here with the
    docker CLI, as someone else's would be): refused without --external;
    with it, read through its container (found by name) or, by address,
    from timing alone (no bound within reach: which of the unbounded classes
    stays a list of candidates)."""
    tag = redis_up["run"][-6:]
    net, box = f"cl-plain-{tag}", f"cl-plain-redis-{tag}"
    subprocess.run(["docker", "network", "create", "--internal", net], check=True, capture_output=True)
    try:
        subprocess.run(["docker", "run", "-d", "--name", box, "--network", net, "--read-only", "--tmpfs", "/tmp",
                        "--cap-drop", "ALL", "--user", "10001:10001", real_image, "iolab-serve", "redis"],
                       check=True, capture_output=True)
        refused = lab("classify", f"{box}:12345", "--network", net, "--protocol", "redis", timeout=120)
        assert refused.returncode == 2 and "add --external" in refused.stderr, refused.stderr[-500:]
        got = classified(f"{box}:12345", "--network", net, "--protocol", "redis", "--external")
        assert (got["cls"], got["confidence"]) == ("event-loop", "high") and f"container {box}" in got["how"]
        ip = json.loads(subprocess.run(["docker", "inspect", box], check=True, capture_output=True,
                                       text=True).stdout)[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        blind = classified(f"{ip}:12345", "--network", net, "--protocol", "redis", "--external")
        assert (blind["cls"], blind["confidence"]) == ("concurrent", "medium"), blind["evidence"]
        assert "event-loop" in blind["candidates"] and blind["bound"] is None
        assert blind["observed"]["table"] is False and any("timing alone" in e for e in blind["evidence"])
    finally:
        subprocess.run(["docker", "rm", "-f", box], capture_output=True)
        subprocess.run(["docker", "network", "rm", net], capture_output=True)
