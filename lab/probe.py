"""Probing one model in a live run: its server, the swarm, and what they show.

    bench = Bench(live)                       # one swarm container for the run
    target = bench.serve(model)               # a fresh server, healthy
    with target.sampling():                   # thread/CPU samples meanwhile
        probe = bench.swarm(target, name, ["--clients=3", ...])
    probe.results                             # the swarm's results.json
    target.events.matching(...)               # the server's own trace

The swarm runs by `exec` in one long-lived swarm container (a tenth of a
second, against a second to start a container), with its results written to
the run's results volume and copied out.  Samples of the server come from
the engine, never from inside the server: the Docker stats API (the
container's cgroup: CPU time, tasks, memory) and `top` (ps on the engine's
host: one line per thread, so threads per process, the classic
`ps huH p PID | wc -l`).  Sampling at an interval is measurement; waiting for
something to happen is always a bounded wait on an event.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import docker.errors
from docker.models.containers import Container

from .errors import EnvironmentProblem
from .events import EventStream
from .live import LiveRun
from .models import Model

IDLE = ["python3", "-c", "import signal; signal.pause()"]  # the swarm container waits for execs
# A health check is a process started in the container every interval (about
# 20 ms of CPU each, charged to its cgroup): enough to colour an idle server's
# CPU.  Probed servers run without one; their own `start` event says ready.
NO_HEALTHCHECK = {"test": ["NONE"]}
SAMPLE_EVERY = 0.1  # seconds between samples while sampling
# Run in the server container: memory of the server processes (not itself).
MEMORY_SCRIPT = """
import json, os
out = {"pss": 0, "uss": 0, "rss": 0, "processes": 0}
for pid in filter(str.isdigit, os.listdir("/proc")):
    if pid in ("1", str(os.getpid())):  # docker-init, and this script
        continue
    try:
        if b"server.py" not in open(f"/proc/{pid}/cmdline", "rb").read():
            continue
        fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/smaps_rollup").read().splitlines()[1:])
    except OSError:
        continue
    kb = lambda k: int(fields.get(k, "0 kB").split()[0]) * 1024
    out["pss"] += kb("Pss")
    out["uss"] += kb("Private_Clean") + kb("Private_Dirty")
    out["rss"] += kb("Rss")
    out["processes"] += 1
print(json.dumps(out))
"""


@dataclass
class Sample:
    """The server's process table at one moment (`top`: fast, ~20 ms)."""

    t: float  # host CLOCK_MONOTONIC, the clock the containers share on one engine host
    processes: int  # server processes (docker-init excluded)
    threads: int  # threads of the main (oldest) server process
    per_process: dict[int, int] = field(default_factory=dict)  # pid -> threads


@dataclass
class Cpu:
    """The container's cgroup counters, stamped by the engine when it read
    them (the stats API answers about once a second, so its own stamp, not
    ours, dates the reading)."""

    read: float  # epoch seconds, the engine's stamp
    cpu_s: float  # cgroup CPU time so far
    memory: int  # bytes charged to the cgroup


@dataclass
class Probe:
    name: str
    results: dict[str, Any]
    exit_code: int
    began: float  # host monotonic, just before the swarm started
    ended: float
    output: str

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
        stats = self.container.stats(stream=False, one_shot=True)
        read = stats.get("read", "")
        stamp = datetime.fromisoformat(read[:26].rstrip("Z") + "+00:00").timestamp() if read else time.time()
        return Cpu(stamp, stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0) / 1e9,
                   stats.get("memory_stats", {}).get("usage", 0))

    def sample(self) -> Sample:
        """The server's processes and threads now (ps -eLf on the engine's host)."""
        per_process: dict[int, int] = {}
        top = self.container.top(ps_args="-eLf")
        titles = top["Titles"]
        pid_at, cmd_at = titles.index("PID"), titles.index("CMD")
        for row in top["Processes"] or []:
            if "docker-init" in row[cmd_at]:
                continue
            pid = int(row[pid_at])
            per_process[pid] = per_process.get(pid, 0) + 1
        main = min(per_process) if per_process else 0
        return Sample(time.monotonic(), len(per_process), per_process.get(main, 0), per_process)

    @contextlib.contextmanager
    def sampling(self, every: float = SAMPLE_EVERY) -> Iterator[list[Sample]]:
        """Sample the process table in the background while the block runs."""
        taken: list[Sample] = []
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    taken.append(self.sample())
                except (docker.errors.APIError, ValueError, KeyError):
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
        """PSS, USS (private) and RSS of every server process, in bytes, read
        from /proc/<pid>/smaps_rollup inside the container (a short exec: the
        only reading here that runs there; memory, not CPU, is what it reads)."""
        code, output = self.container.exec_run(["python3", "-c", MEMORY_SCRIPT])
        try:
            return json.loads(output) if code == 0 else {"error": output.decode(errors="replace")[-200:]}
        except ValueError:
            return {"error": "unreadable smaps_rollup"}

    def netstat(self) -> dict[str, int]:
        """The listen queue's overflow counters of the server's network namespace."""
        code, output = self.container.exec_run(["cat", "/proc/net/netstat"])
        if code != 0:
            return {}
        lines = [l.split() for l in output.decode().splitlines() if l.startswith("TcpExt:")]
        if len(lines) < 2:
            return {}
        table = dict(zip(lines[0][1:], lines[1][1:]))
        return {k: int(table[k]) for k in ("ListenOverflows", "ListenDrops", "TCPBacklogDrop") if k in table}

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

    def __init__(self, live: LiveRun) -> None:
        self.live = live
        self.swarm_container = live.start("swarm", command=IDLE)
        self.volume = "/results"
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
            stem = f"probes/{target.model.name}/{name}"
            self.live.dir.write_bytes(f"{stem}.results.json", raw)
            self.live.dir.write_bytes(f"{stem}.swarm.log", output or b"")
        if ended - began > timeout:
            raise EnvironmentProblem(f"the swarm for {target.model.name}/{name} ran {ended - began:.0f}s, "
                                     f"over its {timeout:.0f}s bound")
        return Probe(name, results, code, began, ended, text)
