"""`lab up`: a server and a client swarm against it, left up until `lab down`.

    started = up(UpRequest("threads", clients=3))
    started.server, started.swarm, started.run_id, started.healthy_s

The swarm runs the classic experiment by default (three clients, each
sending "client N" every 50 ms) and stops by itself after its duration; the
server stays.  The run is kept (a labelled marker says so) past this process.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config
from ..console import say
from ..engine import Unit
from ..errors import UsageError
from ..plan import compose, models
from ..plan.commands import with_flags
from .context import engine
from .live import LiveRun


@dataclass(frozen=True)
class UpRequest:
    model: str
    clients: int = 3
    interval: float = 50  # ms between one client's messages
    duration: float = 300  # seconds until the swarm stops by itself
    message: str | None = None
    pattern: str = "interval"
    workers: int | None = None
    trace: str = "msg"
    no_swarm: bool = False
    publish: bool = False
    name: str | None = None
    timeout: float = 60  # seconds for the server to become healthy
    orchestrator: str | None = None
    swarm_replicas: int = 1
    rate: float | None = None  # --pattern rate: requests per second over all the clients


@dataclass
class Started:
    model: models.Model
    run_id: str
    run_dir: Path
    server: Unit
    swarm: Unit | None
    healthy_s: float


def up(req: UpRequest, params: dict[str, Any]) -> Started:
    """Start the server, wait until it is healthy, start the swarm, keep the run
    (``params``: run.json's)."""
    model = models.get(req.model)
    if req.name and not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,30}", req.name):
        raise UsageError("--name must be lower-case letters, digits, '.', '_' or '-' (at most 31)")
    topology = compose.load_topology(config.compose_file())
    if model.name not in topology.services:
        raise UsageError(f"{model.name} has a model.yaml but no service in {topology.file}")
    command = server_command(topology.service(model.name).spec["command"], req.trace, req.workers, model)
    began = time.monotonic()
    eng = engine(req.orchestrator)
    with LiveRun(eng, "up", model.name, say=say, name=req.name, params=params, topology=topology) as live:
        server = live.start(model.name, publish=req.publish, command=command)
        live.wait_healthy(server, req.timeout)
        healthy = time.monotonic() - began
        swarm = None
        if not req.no_swarm:
            swarm = live.start("swarm", command=with_flags(
                live.topology.service("swarm").spec["command"], target=f"server:{model.port}",
                clients=req.clients, interval=req.interval, duration=req.duration, message=req.message,
                pattern=req.pattern, rate=req.rate, trace=req.trace,
                protocol=None if model.protocol == "line" else model.protocol),
                replicas=req.swarm_replicas)
        live.keep()
        live.dir.write_json("up.json", {"healthy_after_s": round(healthy, 3)})
    return Started(model, live.id, live.dir.path, server, swarm, healthy)


def server_command(base: list[str], trace: str, workers: int | None, model: models.Model) -> list[str]:
    """The server's command: its trace level, and the pool size asked for, or
    model.yaml's (the size its expectations were written for)."""
    command = [*base, f"--trace={trace}"]
    if workers is None and model.workers is not None and model.kind == "model":
        workers = model.workers
    if workers is not None:
        if model.workers is None:
            pools = ", ".join(n for n, m in models.all_models().items() if m.workers)
            raise UsageError(f"{model.name} has no pool: --workers applies to targets with one ({pools})")
        if workers % model.workers_step:
            raise UsageError(f"{model.name} shares its pool among {model.workers_step} processes: --workers "
                             f"must be a multiple of {model.workers_step}, not {workers}")
        command.append(f"--workers={workers}")
    return command
