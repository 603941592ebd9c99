"""lab bench from start to end: one run, the parts asked for, bench.json.

    results, run_dir = bench(Request(what="calibrate"), params)

Figures are measurements, not pass/fail: they land in bench.json in the run
directory, with the engine they were taken on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..console import say
from ..errors import UsageError
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench
from .calibrate import WARMUP, bench_calibrate
from .speed import bench_swarm, bench_tour, bench_up


@dataclass(frozen=True)
class Request:
    what: str = "all"  # up | swarm | calibrate | tour | all
    repeat: int = 5  # start-ups to time
    duration: float | None = None  # seconds of each throughput run (its default: each part's own)
    pipeline: int | None = None  # requests in flight per connection (likewise)
    rounds: int = 3  # calibrate: alternating rounds of the six pairs
    connections: int = 10_000  # the scale run's concurrent connections
    orchestrator: str | None = None
    swarm_replicas: int = 1


def bench(req: Request, params: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The parts of ``req.what``, in one run (``params``: run.json's); bench.json's document."""
    if req.what in ("calibrate", "all") and (req.duration or 5.0) <= WARMUP:
        raise UsageError(f"--duration {req.duration:g} leaves nothing of a calibration run after "
                         f"its {WARMUP:g} s warm-up: give more than {WARMUP:g}")
    eng = engine(req.orchestrator)
    results: dict[str, Any] = {"schema": "iolab.bench/1"}
    with LiveRun(eng, "bench", req.what, say=say, params=params) as live:
        live.ensure_image()
        if req.what in ("up", "all"):
            results["up"] = bench_up(req.repeat, eng.kind)
        if req.what in ("tour", "all"):  # before the probes' swarm container is up: the tour has the host
            results["tour"] = bench_tour(eng.kind)
        probes = Bench(live, replicas=req.swarm_replicas) if req.what in ("swarm", "calibrate", "all") else None
        if req.what in ("swarm", "all"):
            assert probes is not None
            results["swarm"] = bench_swarm(live, probes, req.duration, req.pipeline, req.connections)
        if req.what in ("calibrate", "all"):
            assert probes is not None
            results["calibrate"] = bench_calibrate(live, probes, req.duration, req.pipeline, req.rounds)
        results["engine"] = {**{k: eng.version().get(k) for k in ("Version", "ApiVersion", "KernelVersion")},
                             "orchestrator": eng.kind}
        live.dir.write_json("bench.json", results)
    return results, live.dir.path
