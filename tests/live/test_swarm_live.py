"""The swarm in its container against a live server, one run per pattern:
each ends by itself and writes results.json with what it saw."""

from __future__ import annotations

import pytest

from lab import models
from lab.console import say
from lab.live import LiveRun
from lab.probe import Bench

PATTERNS = {
    "interval": ["--clients=3", "--pattern=interval", "--interval=50"],
    "pingpong": ["--clients=20", "--pattern=pingpong", "--pipeline=4", "--size=64", "--warmup=0.3"],
    "rate": ["--clients=20", "--pattern=rate", "--rate=2000", "--warmup=0.3"],
    "hold": ["--clients=200", "--pattern=hold", "--ramp=1000"],
    "storm": ["--clients=10", "--pattern=storm"],
}


@pytest.fixture(scope="module")
def epoll(engine, app_image):
    with LiveRun(engine, "test", "swarm-patterns", say=say) as live:
        bench = Bench(live)
        target = bench.serve(models.get("epoll"), trace="conn")
        try:
            yield bench, target
        finally:
            target.close()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_pattern_runs_and_reports(epoll, pattern: str) -> None:
    bench, target = epoll
    probe = bench.swarm(target, pattern, [*PATTERNS[pattern], "--duration=1.5", "--trace=conn"])
    s = probe.summary
    assert probe.exit_code == 0 and probe.results["ok"], probe.results.get("failures")
    assert s["pattern"] == pattern and s["end_reason"] == "duration"
    assert sum(s["errors"].values()) == 0
    # per_s: cores the swarm's workers kept busy, their CPU over the run's length
    cpu, took = probe.results["cpu"], probe.results["duration_s"]
    assert cpu["per_s"] == pytest.approx(cpu["workers_s"] / took, abs=0.002), (cpu, took)
    assert cpu["workers_s"] <= cpu["total_s"] and cpu["per_s"] <= probe.results["environment"]["cpu_count"], cpu
    if pattern == "hold":
        assert s["connections"]["connected"] == 200 and s["replies"] == 0
        return
    assert s["replies"] > 0
    latency = s["latency"]
    assert latency["count"] > 0
    assert latency["p50_us"] <= latency["p90_us"] <= latency["p99_us"] <= latency["p99_9_us"] <= latency["max_us"]
    if pattern == "interval":
        assert {c["client"] for c in probe.results["connections"] if c["replies"]} == {1, 2, 3}
        assert all(len(c["pairs"]) >= 20 for c in probe.results["timeline"]["conns"])
    if pattern == "rate":
        assert abs(s["rate"]["achieved_per_s"] - 2000) < 200
    if pattern == "storm":
        assert s["connections"]["attempted"] > 10 and s["storm"]["connections_per_s"] > 0
