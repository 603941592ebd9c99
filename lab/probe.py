"""Probing one model in a live run: its server, the swarm, and what they show.

    bench = Bench(live)                       # one swarm container for the run
    target = bench.serve(model)               # a fresh server, listening
    with target.sampling():                   # process-table samples meanwhile
        probe = bench.swarm(target, name, ["--clients=3", ...])
    probe.results                             # the swarm's results.json
    target.events.matching(...)               # the server's own trace

The swarm runs by `exec` in one long-lived swarm container (a tenth of a
second, against a second to start a container), with its results written to
the run's results volume and copied out.  The server is read from outside,
through lab/measure.py: its cgroup's CPU time and memory, its processes'
PSS/USS/RSS, and `top` (ps on the engine's host: one line per thread, so
threads per process, the classic `ps huH p PID | wc -l`).  Sampling at an
interval is measurement; waiting for something to happen is always a
bounded wait on an event.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import docker.errors
from docker.models.containers import Container

from . import measure
from .errors import EnvironmentProblem, LabError
from .events import EventStream
from .live import LiveRun
from .measure import Cpu, Sample
from .models import Model

__all__ = ["Bench", "Cpu", "Probe", "Sample", "Target"]

IDLE = ["python3", "-c", "import signal; signal.pause()"]  # the swarm container waits for execs
# A health check is a process started in the container every interval (about
# 20 ms of CPU each, charged to its cgroup): enough to colour an idle server's
# CPU.  Probed servers run without one; their own `start` event says ready.
NO_HEALTHCHECK = {"test": ["NONE"]}
SAMPLE_EVERY = 0.1  # seconds between samples while sampling


@dataclass
class Probe:
    name: str
    results: dict[str, Any]
    exit_code: int
    began: float  # host monotonic, just before the swarm started
    ended: float
    output: str
    command: list[str] | None = None  # the swarm's argv

    @property
    def summary(self) -> dict[str, Any]:
        return self.results.get("summary", {})


class Target:
    """One model's server container, with its event stream and samplers."""

    def __init__(self, bench: "Bench", model: Model, container: Container, healthy_after: float) -> None:
        self.bench = bench
        self.model = model
        self.container = container
        self.healthy_after = healthy_after
        self.events = EventStream(container, model.name)
        self.cgroup = measure.Cgroup(container)
        self.samples: list[Sample] = []

    @property
    def address(self) -> str:
        return f"{self.container.labels['org.iolab.service']}:12345"

    def alive(self) -> bool:
        try:
            self.container.reload()
        except docker.errors.NotFound:
            return False
        return self.container.status == "running"

    def cpu(self) -> Cpu:
        """The container's cgroup counters now: CPU time and memory, stamped
        on the monotonic clock (lab/measure.py: the host's cgroup files when
        the engine is local, else an exec, else the stats API)."""
        return self.cgroup.read()

    def sample(self) -> Sample:
        """The server's processes and threads now (ps -eLf on the engine's host)."""
        return measure.top(self.container)

    @contextlib.contextmanager
    def sampling(self, every: float = SAMPLE_EVERY) -> Iterator[list[Sample]]:
        """Sample the process table in the background while the block runs."""
        taken: list[Sample] = []
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    taken.append(self.sample())
                except (docker.errors.APIError, ValueError, KeyError, LabError):
                    return  # the server is gone (a CRASH): nothing more to read
                stop.wait(every)

        thread = threading.Thread(target=run, daemon=True, name=f"sampler-{self.model.name}")
        thread.start()
        try:
            yield taken
        finally:
            stop.set()
            thread.join(10)
            self.samples.extend(taken)

    def memory(self) -> dict[str, Any]:
        """PSS, USS (private) and RSS of the server's processes, in bytes, with
        their processes and threads (lab/measure.py: read from each process's
        smaps_rollup, on this machine when the engine is local, else by one
        exec of grep in the container); {"error": why} if it cannot be read."""
        try:
            return measure.in_bytes(measure.resources(self.container, self.cgroup.procs_dir))
        except docker.errors.APIError as exc:
            return {"error": str(getattr(exc, "explanation", exc))[-200:]}

    def netstat(self) -> dict[str, int]:
        """The listen queue's overflow counters of the server's network namespace."""
        return measure.listen_queue(self.container, self.cgroup.procs_dir)

    def stats_request(self) -> dict[str, Any] | None:
        """STATS over the line protocol, by a one-off swarm action (None if
        the server could not answer)."""
        probe = self.bench.swarm(self, "stats", ["--clients=1", "--pattern=hold", "--duration=0.5",
                                                 "--at=0:1:STATS", "--trace=off"], save=False)
        for action in probe.results.get("actions", []):
            if action.get("outcome") == "reply":
                try:
                    return json.loads(action["reply"])
                except (ValueError, TypeError):
                    return None
        return None

    def close(self) -> None:
        self.events.close()


class Bench:
    """The probing set-up of one live run: a swarm container to exec in."""

    def __init__(self, live: LiveRun, saved_under: str = "probes") -> None:
        self.live = live
        self.swarm_container = live.start("swarm", command=IDLE)
        self.volume = "/results"
        self.saved_under = saved_under  # where in the run directory each probe's results go
        self._n = 0

    def serve(self, model: Model, args: list[str] | None = None, trace: str = "msg",
              timeout: float = 60) -> Target:
        """A fresh server for ``model`` (an old one of the same model is removed)."""
        old = self.live.containers.get(model.name)
        if old is not None:
            with contextlib.suppress(docker.errors.NotFound):
                old.remove(force=True)
        spec = self.live.topology.service(model.name)
        command = [*spec.spec["command"], f"--trace={trace}", *(args or [])]
        began = time.monotonic()
        container = self.live.start(model.name, command=command, healthcheck=NO_HEALTHCHECK)
        target = Target(self, model, container, 0.0)
        try:
            target.events.wait_for(lambda e: e["ev"] == "start", timeout, what="start events")
        except AssertionError as exc:
            target.close()
            raise EnvironmentProblem(f"{model.name} did not start listening: {exc}") from None
        target.healthy_after = time.monotonic() - began
        return target

    def remove(self, target: Target) -> None:
        """Take a model's server away (its log is kept by the run's capture)."""
        with contextlib.suppress(docker.errors.NotFound):
            self.live.dir.write_log(target.model.name, target.container.logs())
            target.container.remove(force=True)

    def swarm(self, target: Target, name: str, flags: list[str], timeout: float = 120,
              save: bool = True) -> Probe:
        """Run the swarm against ``target`` and return what it recorded."""
        self._n += 1
        out = f"{self.volume}/{self._n:03d}-{target.model.name}-{name}"
        command = ["python3", "/srv/swarm/swarm.py", f"--target={target.address}", *flags, f"--out={out}"]
        began = time.monotonic()
        try:
            code, output = self.swarm_container.exec_run(command, demux=False)
        except docker.errors.APIError as exc:
            raise EnvironmentProblem(f"cannot run the swarm: {exc.explanation}") from None
        ended = time.monotonic()
        text = (output or b"").decode(errors="replace")
        raw = self.live.read_file("swarm", f"{out}/results.json")
        if raw is None:
            raise EnvironmentProblem(f"the swarm wrote no results for {target.model.name}/{name} "
                                     f"(exit {code}): {text.strip().splitlines()[-1:] or 'no output'}")
        results = json.loads(raw)
        for warning in results.get("warnings", []):  # e.g. a descriptor limit the host cannot raise
            self.live.say(f"warning from the swarm ({target.model.name}/{name}): {warning}")
        if save:
            stem = f"{self.saved_under}/{target.model.name}/{name}"
            self.live.dir.write_bytes(f"{stem}.results.json", raw)
            self.live.dir.write_bytes(f"{stem}.swarm.log", output or b"")
        if ended - began > timeout:
            raise EnvironmentProblem(f"the swarm for {target.model.name}/{name} ran {ended - began:.0f}s, "
                                     f"over its {timeout:.0f}s bound")
        return Probe(name, results, code, began, ended, text, command)
