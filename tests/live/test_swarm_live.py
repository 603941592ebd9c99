"""The swarm in its container against a live server, one run per pattern:
each ends by itself and writes results.json with what it saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ioschema import hist
from lab.console import say
from lab.plan import models
from lab.run.live import LiveRun
from lab.run.probe import Bench

from . import fastpath_probe

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


@pytest.mark.parametrize("fast_path", ["native", "python"])
def test_pingpong_books_every_reply_alike_in_c_and_in_python(epoll, fast_path: str) -> None:
    """The app image carries the C fast path (swarm/fastpath.c); both loops
    must keep the same books: every reply in one connection record, the
    histogram, and a timeline whose pairs chain (each reply refills at once)."""
    bench, target = epoll
    probe = bench.swarm(target, f"pingpong-{fast_path}", [
        "--clients=40", "--pattern=pingpong", "--pipeline=1", "--size=64", "--warmup=0.3",
        "--duration=1.5", "--trace=conn", "--timeline-per-conn=150", f"--fast-path={fast_path}"])
    r, s = probe.results, probe.summary
    assert probe.exit_code == 0 and r["ok"], r.get("failures")
    assert r["cpu"]["fast_path"] == fast_path and {w["fast_path"] for w in r["workers"]} == {fast_path}
    conns = r["connections"]
    assert len(conns) == 40 and sum(c["replies"] for c in conns) == s["replies"] > 1000
    for c in conns:
        assert c["errors"] == {} and c["sent"] - c["replies"] == c["unanswered"] in (0, 1), c
        assert 64 * c["replies"] <= c["bytes_received"] < 64 * (c["replies"] + 1), c  # echoed, line for line
        assert c["bytes_sent"] == 64 * c["sent"], c
        assert 0 <= c["latency_mean_us"] <= c["latency_max_us"], c
    hist = r["histograms"]["latency"]
    assert hist["count"] == sum(n for _, n in hist["buckets"]) == s["latency"]["count"] > 0
    # the records hold the warm-up's replies too, the histogram only the measured ones
    assert hist["max"] <= max(c["latency_max_us"] for c in conns)
    for tl in r["timeline"]["conns"]:
        record = next(c for c in conns if c["client"] == tl["client"])
        pairs = tl["pairs"]
        assert len(pairs) == min(150, record["replies"]), (len(pairs), record)
        assert all(sent <= got for sent, got in pairs)
        # closed loop: the next request leaves in the turn its reply arrived
        assert all(pairs[i][1] == pairs[i + 1][0] for i in range(len(pairs) - 1)), pairs[:5]


def test_the_c_fast_path_books_replies_as_the_ledger_does(epoll) -> None:
    """swarm/fastpath.c as the app image built it, reply by reply against
    book.Ledger over a socketpair (tests/live/fastpath_probe.py), then each
    case it must leave to Python; its histogram layout is ioschema.hist's."""
    bench, _ = epoll
    script = (Path(__file__).with_name("fastpath_probe.py")).read_text()
    code, out = bench.swarm_container.exec(["python3", "-c", script])
    assert code == 0, out.decode(errors="replace")[-2000:]
    got = json.loads(out.splitlines()[-1])
    assert got["layout"] == [hist.SUB_BITS, hist.HALF_BITS, hist.SIZE], got["layout"]
    fastpath_probe.check(got)
