"""Probing one model in a live run: its server, the swarm, and what they show.

    bench = Bench(live)                       # one swarm container for the run
    target = bench.serve(model)               # a fresh server, listening
    with target.sampling():                   # process-table samples meanwhile
        probe = bench.swarm(target, name, ["--clients=3", ...])
    probe.results                             # the swarm's results.json
    target.events.matching(...)               # the server's own trace

On one machine the swarm runs by `exec` in one long-lived swarm container (a
tenth of a second, against a second to start a container), with its results
written to the run's results volume and copied out.  Where the engine's
orchestrator spreads the swarm over other machines (Swarm mode: replicas on
load nodes), each probe is a swarm unit of its own whose replicas send their
results back in their output; the replicas' documents are merged into one
(lab/measure/merge.py), on this machine's clock.  The server is read from outside,
through lab/measure/: its cgroup's CPU time and memory, its processes'
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

from ..engine import NO_HEALTHCHECK, EngineError, EngineTimeout, Gone, Unit
from ..errors import EXIT_USAGE, EnvironmentProblem, LabError, UsageError
from ..measure import evidence, merge, reach
from ..measure.cgroup import Cgroup, Cpu
from ..measure.procs import Sample, in_bytes, listen_queue, resources, top
from ..measure.events import EventStream
from ..plan.models import Model
from .live import LiveRun

__all__ = ["Bench", "Probe", "Target"]

IDLE = ["python3", "-c", "import signal; signal.pause()"]  # the swarm container waits for execs
# A health check is a process started in the container every interval (about
# 20 ms of CPU each, charged to its cgroup): enough to colour an idle server's
# CPU.  Probed servers run without one (NO_HEALTHCHECK); their own `start`
# event says ready.
SAMPLE_EVERY = 0.1  # seconds between samples while sampling
TIMED_OUT = 124  # coreutils timeout's exit status when it had to stop the command


@dataclass
class Probe:
    name: str
    results: dict[str, Any]
    exit_code: int | None
    began: float  # host monotonic, just before the swarm started
    ended: float
    output: str
    command: list[str] | None = None  # the swarm's argv

    @property
    def summary(self) -> dict[str, Any]:
        return self.results.get("summary", {})


class Target:
    """One model's server unit, with its event stream and samplers."""

    def __init__(self, bench: "Bench", model: Model, container: Unit, healthy_after: float) -> None:
        self.bench = bench
        self.model = model
        self.container = container  # the server's unit (a container, or a Swarm service)
        self.healthy_after = healthy_after
        self.events = EventStream(container, model.name)
        self.cgroup = Cgroup(container)
        self.samples: list[Sample] = []
        self.traced = reach.traced(model)  # writes the lab's JSON-line trace (a real server does not)

    @property
    def address(self) -> str:
        return f"{self.container.service}:{self.model.port}"

    def alive(self) -> bool:
        return self.container.alive()

    def cpu(self) -> Cpu:
        """The container's cgroup counters now: CPU time and memory, stamped
        on the monotonic clock (lab/measure/: the host's cgroup files when
        the engine is local, else an exec, else the stats API)."""
        return self.cgroup.read()

    def sample(self) -> Sample:
        """The server's processes and threads now (ps -eLf on its machine)."""
        return top(self.container)

    @contextlib.contextmanager
    def sampling(self, every: float = SAMPLE_EVERY) -> Iterator[list[Sample]]:
        """Sample the process table in the background while the block runs."""
        taken: list[Sample] = []
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    taken.append(self.sample())
                except (ValueError, KeyError, LabError):
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
        their processes and threads (lab/measure/: read from each process's
        smaps_rollup, on this machine when the engine is local, else by one
        exec of grep in the container); {"error": why} if it cannot be read."""
        try:
            return in_bytes(resources(self.container, self.cgroup.procs_dir))
        except EngineError as exc:
            return {"error": str(exc)[-200:]}

    def netstat(self) -> dict[str, int]:
        """The listen queue's overflow counters of the server's network namespace."""
        return listen_queue(self.container, self.cgroup.procs_dir)

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
    """The probing set-up of one live run: the swarm's unit (one to exec in,
    on one machine; else one per probe) and the servers it probes."""

    def __init__(self, live: LiveRun, saved_under: str = "probes", replicas: int = 1,
                 network: str | None = None) -> None:
        self.live = live
        self.network = network  # another network for the swarm (lab classify --network); None: the run's
        self.replicas = replicas  # swarm replicas per probe (Swarm mode: spread over load nodes)
        self.by_exec = live.engine.swarm_by_exec and replicas == 1
        # The unit whose machine a probe's load runs on: where the host's own
        # figures (/proc/stat) are read when the server's machine is not this one.
        self.swarm_container: Unit | None = live.start("swarm", command=IDLE, network=network) \
            if self.by_exec else None
        self.volume = "/results"
        self.saved_under = saved_under  # where in the run directory each probe's results go
        self._n = 0
        self._current: Unit | None = None  # the probe's own swarm unit while it runs (not by exec)
        self._cgroups: dict[str, list[Cgroup]] = {}

    def serve(self, model: Model, args: list[str] | None = None, trace: str = "msg",
              timeout: float = 60) -> Target:
        """A fresh server for ``model`` (an old one of the same model is removed)."""
        old = self.live.containers.get(model.name)
        if old is not None:
            with contextlib.suppress(Gone):
                old.remove()
        spec = self.live.topology.service(model.name)
        command = [*spec.spec["command"], f"--trace={trace}", *(args or [])]
        began = time.monotonic()
        container = self.live.start(model.name, command=command, healthcheck=NO_HEALTHCHECK)
        target = Target(self, model, container, 0.0)
        try:
            if not target.traced:  # a real server: listening, then a first reply (lab/measure/reach.py)
                reach.wait_ready(container, model.port, target.cgroup.procs_dir, lambda: reach.answered(
                    self.swarm(target, "ready", reach.EXCHANGE, save=False).results), timeout, model.name)
            else:
                target.events.wait_for(lambda e: e["ev"] == "start", timeout, what="start events")
        except AssertionError as exc:
            target.close()
            raise EnvironmentProblem(f"{model.name} did not start listening: {exc}") from None
        except EnvironmentProblem:
            target.close()
            raise
        target.healthy_after = time.monotonic() - began
        return target

    def remove(self, target: Target) -> None:
        """Take a model's server away (its log is kept by the run's capture)."""
        with contextlib.suppress(Gone):
            self.live.dir.write_log(target.model.name, target.container.logs())
            target.container.remove()

    def swarm(self, target: Target, name: str, flags: list[str], timeout: float = 120,
              save: bool = True) -> Probe:
        """Run the swarm against ``target`` and return what it recorded."""
        self._n += 1
        out = f"{self.volume}/{self._n:03d}-{target.model.name}-{name}"
        flags = reach.swarm_flags(target.model, flags)  # its protocol, its slow request
        command = ["python3", "/srv/swarm/swarm.py", f"--target={target.address}", *flags, f"--out={out}"]
        began = time.monotonic()
        if self.by_exec:
            code, output, raw = self._by_exec(target, name, command, out, timeout)
        else:
            code, output, raw = self._by_unit(target, name, command, out, timeout)
        ended = time.monotonic()
        text = output.decode(errors="replace")
        results = json.loads(raw)
        if save:  # kept before it is judged: broken evidence is what a bug report needs
            stem = f"{self.saved_under}/{target.model.name}/{name}"
            self.live.dir.write_bytes(f"{stem}.results.json", raw)
            self.live.dir.write_bytes(f"{stem}.swarm.log", output)
        evidence.check_results(results, f"{out}/results.json")  # the swarm's, or its replicas' merged
        for warning in results.get("warnings", []):  # e.g. a descriptor limit the host cannot raise
            self.live.say(f"warning from the swarm ({target.model.name}/{name}): {warning}")
        return Probe(name, results, code, began, ended, text, command)

    def run_client(self, name: str, argv: list[str], timeout: float) -> tuple[int | None, str]:
        """Another client program of the swarm's image (classify's hold probe),
        where the swarm runs: its exit status and its output (stdout)."""
        if self.by_exec:
            assert self.swarm_container is not None
            try:
                code, output = self.swarm_container.exec(["timeout", "-k", "5", f"{timeout:g}", *argv], stderr=False)
            except EngineError as exc:
                raise EnvironmentProblem(f"cannot run {name}: {exc}") from None
            if code in (TIMED_OUT, 128 + 9):
                raise EnvironmentProblem(f"{name} was still running after its {timeout:g}s bound and was stopped")
            return code, output.decode(errors="replace")
        unit = self.live.start("swarm", command=argv, key=name, network=self.network,
                               name=f"{self.live.prefix}-{name}-{self._n + 1:03d}")
        self._n += 1
        try:
            try:
                code = unit.wait(timeout + 10)
            except EngineTimeout:
                raise EnvironmentProblem(f"{name} was still running after its {timeout:g}s bound and was "
                                         "stopped") from None
            return code, unit.logs(stderr=False).decode(errors="replace")
        finally:
            self.live.containers.pop(name, None)
            with contextlib.suppress(EngineError):
                unit.remove()

    def _by_exec(self, target: Target, name: str, command: list[str], out: str,
                 timeout: float) -> tuple[int | None, bytes, bytes]:
        """In the long-lived swarm container: (exit status, output, results.json)."""
        assert self.swarm_container is not None
        try:
            # coreutils' timeout ends a hung swarm (SIGTERM: it still writes its
            # results; SIGKILL 5 s later), so the exec itself always returns
            code, output = self.swarm_container.exec(["timeout", "-k", "5", f"{timeout:g}", *command])
        except EngineError as exc:
            raise EnvironmentProblem(f"cannot run the swarm: {exc}") from None
        text = output.decode(errors="replace")
        if code in (TIMED_OUT, 128 + 9):
            raise EnvironmentProblem(f"the swarm for {target.model.name}/{name} was still running after "
                                     f"its {timeout:g}s bound and was stopped; last lines: "
                                     f"{text.strip().splitlines()[-2:] or 'no output'}")
        raw = self.swarm_container.read_file(f"{out}/results.json")
        if raw is None:
            raise _no_results(target, name, code, text.strip().splitlines()[-1:] or "no output")
        return code, output, raw

    def _by_unit(self, target: Target, name: str, command: list[str], out: str,
                 timeout: float) -> tuple[int | None, bytes, bytes]:
        """A swarm unit of its own (its replicas wherever the orchestrator puts
        them), waited for, its replicas' results merged."""
        key = "swarm"  # its logs and labels say swarm; its name is the probe's own
        unit = self.live.start("swarm", command=command, key=key, replicas=self.replicas, network=self.network,
                               name=f"{self.live.prefix}-swarm-{self._n:03d}")
        self._current = unit
        try:
            try:
                code = unit.wait(timeout + 10)
            except EngineTimeout:
                raise EnvironmentProblem(f"the swarm for {target.model.name}/{name} was still running after "
                                         f"its {timeout:g}s bound and was stopped; last lines: "
                                         f"{self.live.engine.tail(unit, 2)}") from None
            output = unit.logs()
            docs = self.live.results(unit, f"{out}/results.json")
            if not docs:
                raise _no_results(target, name, code, self.live.engine.tail(unit, 1))
            return code, output, json.dumps(merge.replicas(docs, self.replicas)).encode()
        finally:
            self._current = None
            self.live.containers.pop(key, None)
            with contextlib.suppress(EngineError):
                unit.remove()

    def load_cgroups(self) -> list[Cgroup]:
        """The cgroups on this machine of the probe's own swarm unit, while it
        runs (what the host's other load must not count, lab/measure/host.py)."""
        unit = self._current
        if unit is None:
            return []
        if unit.id not in self._cgroups:
            parts = unit.parts()
            found = [c for c in (Cgroup(p) for p in parts) if c.local]
            if len(parts) < unit.replicas:
                return found  # not every replica has its container yet: look again next time
            self._cgroups[unit.id] = found
        return self._cgroups[unit.id]


def _no_results(target: Target, name: str, code: int | None, last: Any) -> Exception:
    """The swarm wrote no results: its flags were refused (exit 2, argparse's:
    the scenario asked for something impossible against this target, such as
    a --piece longer than its request), or the environment failed it."""
    if code == EXIT_USAGE:  # argparse refused the flags
        line = " ".join(last) if isinstance(last, list) else str(last)
        return UsageError(f"{target.model.name}/{name}: the swarm refused the scenario's flags: "
                          f"{line.removeprefix('swarm: error: ')}")
    return EnvironmentProblem(f"the swarm wrote no results for {target.model.name}/{name} (exit {code}): {last}")
