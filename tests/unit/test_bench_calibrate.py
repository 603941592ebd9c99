"""lab bench calibrate without Docker: the order of the rounds, the
arithmetic of the ratios, and what the verb prints and exits with."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from lab.bench import calibrate, session
from lab.bench.calibrate import calibration_lines, calibration_order, summarise
from lab.verbs import bench


def test_rounds_alternate_so_drift_weighs_on_both_sides() -> None:
    order = calibration_order(2)
    assert order[:6] == [(0, "native", "native"), (0, "python", "native"), (0, "swarm", "native"),
                         (0, "native", "epoll"), (0, "python", "epoll"), (0, "swarm", "epoll")]
    assert order[6:] == [(1, c, s) for _, c, s in reversed(order[:6])]  # ABBA
    for rnd in range(3):  # every pair once a round
        pairs = [(c, s) for r, c, s in calibration_order(3) if r == rnd]
        assert sorted(pairs) == sorted((c, s) for c in calibrate.CLIENTS for s in calibrate.SERVERS)


def run(rnd: int, client: str, server: str, rate: float | None, cpu: float | None = 10.0,
        busy: float | None = 0.0) -> dict[str, Any]:
    return {"round": rnd, "client": client, "server": server, "replies_per_s": rate,
            "client_cpu_us_per_reply": cpu, "server_cpu_us_per_reply": 5.0, "host_other_cores": busy}


def test_ratios_pair_the_clients_of_one_round() -> None:
    runs = [
        run(0, "native", "native", 100_000), run(0, "swarm", "native", 80_000, cpu=12.0),
        run(0, "native", "epoll", 40_000), run(0, "swarm", "epoll", 40_000, cpu=14.0),
        run(1, "native", "native", 50_000), run(1, "swarm", "native", 45_000, cpu=16.0, busy=0.6),
        run(1, "native", "epoll", 20_000), run(1, "swarm", "epoll", None, cpu=None),  # measured nothing
        run(0, "python", "native", 90_000, cpu=11.0), run(0, "python", "epoll", 38_000, cpu=11.0),
        run(1, "python", "native", 40_000, cpu=13.0), run(1, "python", "epoll", None, cpu=None),
    ]
    s = summarise(runs)
    assert s["ratios"]["vs_native"]["per_round"] == [0.8, 0.9]  # not 125k/95k: each round on its own
    assert s["ratios"]["vs_native"]["median"] == pytest.approx(0.85)
    assert s["ratios"]["vs_epoll"]["per_round"] == [1.0]  # round 2 had no swarm figure
    assert s["ratios"]["epoll_of_native"]["per_round"] == [0.4, 0.4]
    pair = s["pairs"]["swarm->native"]
    assert (pair["replies_per_s"], pair["min"], pair["max"], pair["runs"]) == (62_500, 45_000, 80_000, 2)
    assert s["pairs"]["swarm->epoll"]["measured"] == 1
    # CPython's floor over the native client, and the swarm over the floor, round by round
    assert s["ratios"]["floor_vs_native"]["per_round"] == [0.9, 0.8]
    assert s["ratios"]["floor_vs_epoll"]["per_round"] == [0.95]
    assert s["ratios"]["swarm_over_floor_native"]["per_round"] == [round(80 / 90, 3), 1.125]
    assert s["ratios"]["swarm_over_floor_epoll"]["per_round"] == [round(40 / 38, 3)]
    assert s["swarm_cpu_us_per_reply"] == {"median": 14.0, "native_median": 10.0, "floor_median": 11.0, "goal": 10.0}
    assert s["host_busy_runs"] == 1
    result = {"summary": s, "runs": runs}
    lines = calibration_lines(result)
    assert "0.85" in lines[0] and "goal 0.8: meets; CPython's floor: 0.85; the swarm does 1.01 of the floor" in lines[0]
    assert "goal 0.95: meets" in lines[1]
    # the floor itself is above the 10 us goal: the verdict says no Python client can meet it here
    assert "14.0 us" in lines[3] and "CPython floor: 11.0 us" in lines[3]
    assert "above; CPython's floor is above it too" in lines[3]
    assert lines[-1].startswith("warning: other work on the host") and "1 of 12 runs" in lines[-1]


def test_a_goal_the_floor_cannot_reach_is_said_to_be_out_of_reach() -> None:
    runs = [run(0, "native", "native", 100_000), run(0, "python", "native", 70_000),
            run(0, "swarm", "native", 60_000), run(0, "native", "epoll", 40_000),
            run(0, "python", "epoll", 39_000), run(0, "swarm", "epoll", 36_000, cpu=9.0)]
    lines = calibration_lines({"summary": summarise(runs), "runs": runs})
    assert "goal 0.8: below; CPython's floor reaches only 0.70, so no Python client can here" in lines[0]
    assert "the swarm does 0.86 of the floor" in lines[0]
    assert "goal 0.95: below; CPython's floor: 0.97; the swarm does 0.92 of the floor" in lines[1]
    assert "goal 10: meets" in lines[3]  # the median of 10.0 and 9.0 us


class FakeCalibrator:
    def __init__(self, live: Any, bench_: Any, duration: float, pipeline: int) -> None:
        self.duration, self.pipeline = duration, pipeline

    def run(self, rnd: int, client: str, server: str) -> dict[str, Any]:
        base = 100_000 if server == "native" else 40_000
        return run(rnd, client, server, base * (0.9 if client == "swarm" else 1.0))

    def trace_level(self, rnd: int, level: str) -> dict[str, Any]:
        figures = run(rnd, "native", "epoll", 40_000)
        figures.update(trace=level, server_cpu_us_per_reply=(9.0 if level == "msg" else 6.0) + rnd)
        return figures


def test_bench_calibrate_runs_every_pair_of_every_round() -> None:
    result = calibrate.bench_calibrate(None, None, duration=None, pipeline=None, rounds=3,  # type: ignore[arg-type]
                                       make=FakeCalibrator)
    assert (result["duration_s"], result["pipeline"], result["connections"], result["size"]) == (5.0, 1, 100, 64)
    assert len(result["runs"]) == 18
    assert result["summary"]["ratios"]["vs_native"]["per_round"] == [0.9, 0.9, 0.9]
    # message tracing's cost: each round's msg over its conn, in ABBA order
    assert [(r["round"], r["trace"]) for r in result["trace_runs"]] == [
        (0, "conn"), (0, "msg"), (1, "msg"), (1, "conn"), (2, "conn"), (2, "msg")]
    cost = result["trace_cost"]
    assert cost["per_round"] == [1.5, round(10 / 7, 3), 1.375] and cost["median"] == round(10 / 7, 3)
    assert cost["server_cpu_us_per_reply"] == {"conn": 7.0, "msg": 10.0}
    line = next(x for x in calibration_lines(result) if "--trace msg" in x)
    assert "goal 2: meets" in line and "10.0 against 7.0 us" in line


def test_a_calibration_too_short_for_its_warm_up_is_refused_before_anything_starts(monkeypatch) -> None:
    from lab.errors import UsageError

    monkeypatch.setattr(session, "engine", lambda: pytest.fail("no engine may be asked for"))
    args = argparse.Namespace(what="calibrate", duration=1.0, pipeline=None, rounds=1, repeat=1, connections=10,
                              orchestrator=None, swarm_replicas=1)
    with pytest.raises(UsageError, match="leaves nothing"):
        bench.run(args)
