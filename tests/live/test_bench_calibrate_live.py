"""lab bench calibrate end to end: the native client, CPython's floor and
the swarm, each against the native server and the epoll model, container to
container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_calibrate_measures_the_six_pairs(app_image, engine) -> None:
    done = subprocess.run([sys.executable, "-m", "lab", "bench", "calibrate", "--rounds", "1", "--duration", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    run_dir = sorted(Path(os.environ["LAB_RUNS_DIR"]).glob("*-bench-calibrate-*"))[-1]
    assert run_dir.name not in engine.runs(run_dir.name), "calibrate left containers, networks or volumes"
    result = json.loads((run_dir / "bench.json").read_text())["calibrate"]
    runs = {(r["client"], r["server"]): r for r in result["runs"]}
    assert sorted(runs) == [(c, s) for c in ("native", "python", "swarm") for s in ("epoll", "native")]
    for (client, server), r in runs.items():
        assert r["connected"] == 100 and r["errors"] == 0, r
        assert r["replies_per_s"] > 0 and r["client_cpu_us_per_reply"] > 0, r
        assert r["server_cpu_us_per_reply"] is not None and r["server_cpu_us_per_reply"] > 0, r
        assert r["latency_p50_us"] <= r["latency_p99_us"], r
    assert runs[("native", "native")]["command"][0] == "iolab-pingpong"
    assert runs[("python", "epoll")]["command"][0] == "iolab-pyfloor"  # shipped in the native image
    assert "--pipeline=1" in runs[("swarm", "epoll")]["command"]
    assert runs[("swarm", "native")]["fast_path"] == "native", "the app image carries swarm/fastpath.c, built"
    summary = result["summary"]
    for key in ("vs_native", "vs_epoll", "floor_vs_native", "floor_vs_epoll",
                "swarm_over_floor_native", "swarm_over_floor_epoll"):
        assert len(summary["ratios"][key]["per_round"]) == 1 and summary["ratios"][key]["median"] > 0, key
    assert summary["swarm_cpu_us_per_reply"]["floor_median"] > 0
    # message tracing's cost: the epoll model at msg and at conn, the native client against each
    trace = {r["trace"]: r for r in result["trace_runs"]}
    assert sorted(trace) == ["conn", "msg"] and all(r["server_cpu_us_per_reply"] > 0 for r in trace.values())
    assert result["trace_cost"]["per_round"] and result["trace_cost"]["median"] > 0, result["trace_cost"]
    assert "--trace msg / --trace conn" in done.stdout
    assert "swarm / native client, replies/s against native" in done.stdout
    assert "CPython floor:" in done.stdout
    assert "client CPU us/reply" in done.stdout
    for log in ("native", "native-client", "epoll", "swarm"):
        assert (run_dir / "logs" / f"{log}.log").exists(), log
    start = json.loads((run_dir / "logs" / "native.log").read_text().splitlines()[0])
    assert (start["ev"], start["model"]) == ("start", "native")
