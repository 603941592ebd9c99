"""The interface every orchestrator implements: an Engine, and the Units it starts.

    engine.start(spec) -> Unit          a compose.yaml service, started for a run
    engine.run_once(spec, timeout)      a unit that runs to completion (the tools)
    engine.runs() / remove(res)         what carries the lab's labels, by run
    unit.logs() / exec() / read_file()  what a unit said, ran and wrote
    unit.host_cgroup() / stats() / top() / limits()   what it uses (lab/measure/ reads them)

Nothing above this package imports the Docker SDK: verbs, checks, measurement
and reports ask these two classes.  Errors come out as EngineError (a
LabError: one line, exit 2) or one of its kinds, never as the SDK's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..errors import EnvironmentProblem
from .labels import KEEP, ROLE
from .spec import UnitSpec


class EngineError(EnvironmentProblem):
    """The engine refused or failed; ``explanation`` is what it said."""

    def __init__(self, explanation: str) -> None:
        super().__init__(explanation)
        self.explanation = explanation


class Gone(EngineError):
    """The unit (or network, volume, image) is not there (any more)."""


class EngineTimeout(EngineError):
    """A bounded wait on the engine ran out."""


class Unreachable(EngineError):
    """This engine cannot reach the machine a unit runs on (a Swarm node
    without an engine endpoint): what needs that machine is not measured."""


@dataclass(frozen=True)
class Exec:
    """What a command run inside a unit returned."""

    exit_code: int | None
    output: bytes  # stdout, and stderr too unless asked apart
    stderr: bytes = b""

    def __iter__(self) -> Iterator[Any]:  # code, output = unit.exec(...)
        return iter((self.exit_code, self.output))


@dataclass(frozen=True)
class State:
    status: str  # running, exited, created, ... (a Swarm task: its state)
    running: bool
    health: str = "-"  # healthy, starting, unhealthy, or "-" without a health check
    exit_code: int | None = None
    ip: str = ""  # its address on the run's network
    created: str = ""
    node: str = ""  # the machine it runs on (a Swarm node's hostname), "" when local


@dataclass(frozen=True)
class Limits:
    pids: int | None = None
    memory: int | None = None  # bytes
    nano_cpus: int | None = None


CPU_FILES = ("cpuacct.usage", "cpu.stat")  # v1: nanoseconds; v2: usage_usec
MEMORY_FILES = ("memory.usage_in_bytes", "memory.current")  # v1, v2: bytes


@dataclass(frozen=True)
class HostCgroup:
    """A unit's cgroup as this machine sees it (the engine is local): a few
    milliseconds to read, and nothing runs inside the unit to read it.
    ``cpu_dir`` holds one of CPU_FILES and cgroup.procs, ``memory_dir`` one
    of MEMORY_FILES."""

    cpu_dir: str
    memory_dir: str | None


@dataclass(frozen=True)
class Clock:
    """How a unit's CLOCK_MONOTONIC relates to this machine's: its time
    minus ours (``offset_s``), known to within ``bound_s`` (None: assumed)."""

    offset_s: float = 0.0
    bound_s: float | None = 0.0
    how: str = "same kernel"

    def to_ours(self, t: float) -> float:
        return t - self.offset_s

    def as_dict(self) -> dict[str, Any]:
        return {"offset_s": round(self.offset_s, 6), "bound_s": None if self.bound_s is None
                else round(self.bound_s, 6), "how": self.how}


SAME = Clock()


@dataclass(frozen=True)
class Finished:
    """A unit that ran to completion (run_once)."""

    code: int | None
    stdout: bytes
    stderr: bytes
    seconds: float


@dataclass(frozen=True)
class Output:
    """A document a unit's replica wrote (the client swarm's results.json),
    with the clock its times are on and the machine it ran on."""

    data: bytes
    clock: Clock = SAME
    node: str = ""
    replica: str = ""  # "2/3"; "" for a single unit


@dataclass
class Resource:
    """A network, volume or other labelled thing of a run (not a unit)."""

    kind: str  # network | volume | config
    name: str
    id: str
    labels: dict[str, str]
    raw: Any = None  # the SDK object: for the engine and tests only


class Unit(ABC):
    """A started service of a run: a container, or a Swarm service and its tasks."""

    name: str
    id: str
    labels: dict[str, str]
    replicas: int = 1
    raw: Any = None  # the SDK object: for the engine and tests only

    @property
    def service(self) -> str:
        from .labels import SERVICE
        return self.labels.get(SERVICE, self.name)

    # -- state -----------------------------------------------------------
    @abstractmethod
    def state(self) -> State: ...

    def alive(self) -> bool:
        try:
            return self.state().running
        except Gone:
            return False

    @abstractmethod
    def published(self) -> str | None:
        """host:port where 12345 is published (only when asked), else None."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def image_id(self) -> str: ...

    @abstractmethod
    def limits(self) -> Limits: ...

    # -- life ------------------------------------------------------------
    @abstractmethod
    def wait(self, timeout: float) -> int | None:
        """Its exit status once it has exited (the worst of its replicas);
        EngineTimeout after ``timeout`` seconds."""

    @abstractmethod
    def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""

    @abstractmethod
    def remove(self) -> None: ...

    # -- what it said, ran and wrote ----------------------------------------
    @abstractmethod
    def logs(self, *, stream: bool = False, follow: bool = False, tail: int | str | None = None,
             stdout: bool = True, stderr: bool = True) -> Any:
        """Its output: bytes, or with stream=True an iterator of chunks."""

    def signal(self, name: str) -> None:
        """Send signal ``name`` (SIGINT...) to its main process; an
        orchestrator that cannot says so (EngineError)."""
        raise EngineError(f"{self.name}: this orchestrator cannot signal a unit's process")

    @abstractmethod
    def exec(self, argv: list[str], *, stdout: bool = True, stderr: bool = True,
             split: bool = False) -> Exec:
        """Run argv inside it and wait; ``split``: stderr apart from stdout."""

    @abstractmethod
    def read_file(self, path: str) -> bytes | None:
        """A file from inside it (running or stopped); None if not there."""

    # -- what it uses (lab/measure/ parses) ---------------------------------
    def host_cgroup(self) -> HostCgroup | None:
        """Its cgroup on this machine, if this machine runs it."""
        return None

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """The engine's one-shot stats answer (cpu_stats, memory_stats, read)."""

    @abstractmethod
    def top(self) -> dict[str, Any]:
        """`ps -eLf` of its processes on its machine: {"Titles", "Processes"}."""

    def clock(self) -> Clock:
        """Its monotonic clock against this machine's."""
        return SAME

    def parts(self) -> list["Unit"]:
        """The containers it is made of (a service: its tasks' containers
        that this engine can reach)."""
        return [self]


@dataclass
class RunResources:
    run: str
    units: list[Unit] = field(default_factory=list)
    networks: list[Resource] = field(default_factory=list)
    volumes: list[Resource] = field(default_factory=list)
    others: list[Resource] = field(default_factory=list)  # Swarm configs
    orchestrator: str = "local"  # the Engine.kind that started it (and removes it)
    also: list["RunResources"] = field(default_factory=list)  # the same id on another orchestrator

    @property
    def labels(self) -> dict[str, str]:
        found: list[dict[str, str]] = [t.labels for t in self.units]
        found += [t.labels for t in (*self.networks, *self.volumes, *self.others)]
        return next((labels for labels in found if labels), {})

    @property
    def kept(self) -> bool:
        return any(r.labels.get(ROLE) == KEEP for r in (*self.volumes, *self.others))

    @property
    def empty(self) -> bool:
        return not (self.units or self.networks or self.volumes or self.others)


class Engine(ABC):
    """One orchestrator: where units run, and everything the lab keeps there."""

    kind = "?"  # local | swarm: --orchestrator's word for it
    lab: str
    # How a probe's client swarm runs (lab/run/probe.py): True, by exec in one
    # long-lived swarm unit per run (fast); False, a unit per probe whose
    # results travel back in its output (replicas on other machines).
    swarm_by_exec = True
    # True: a client swarm's results travel back in its output (replicas on
    # machines whose volumes this engine cannot read); LiveRun asks the swarm
    # for them (swarm.py --results-stdout).  False: read from its volume.
    results_in_output = False

    # -- the engine itself --------------------------------------------------
    @abstractmethod
    def version(self) -> dict[str, Any]: ...

    @abstractmethod
    def info(self) -> dict[str, Any]: ...

    @abstractmethod
    def api_version(self) -> str: ...

    def notes(self) -> list[str]:
        """What this orchestrator cannot enforce of compose.yaml's box, in words."""
        return []

    def describe(self) -> dict[str, Any]:
        """This engine for results.json's environment."""
        version, info = self.version(), self.info()
        return {"orchestrator": self.kind, "version": version.get("Version"),
                "api_version": version.get("ApiVersion"), "client_api_version": self.api_version(),
                "kernel": version.get("KernelVersion"), "os": info.get("OperatingSystem"),
                "arch": version.get("Arch"), "cpus": info.get("NCPU"),
                "memory_bytes": info.get("MemTotal"), "cgroup_version": info.get("CgroupVersion"),
                "cpu_model": None}

    # -- labelled things ------------------------------------------------------
    @abstractmethod
    def runs(self, run: str | None = None, every_lab: bool = False) -> dict[str, RunResources]:
        """Every lab resource on the engine, grouped by run."""

    @abstractmethod
    def remove(self, res: RunResources) -> list[str]:
        """Remove a run's units (forcibly), then its other resources; every
        error is collected and reported together (EnvironmentProblem)."""

    def stop(self, units: list[Unit], grace: Callable[[Unit], float]) -> None:
        """Stop units at once, each with SIGTERM and SIGKILL ``grace(unit)`` later."""
        import threading

        def stop(u: Unit) -> None:
            try:
                u.stop(max(0.0, grace(u)))
            except EngineError:
                pass  # gone already, or the engine refuses: remove() will force it

        threads = [threading.Thread(target=stop, args=(u,), daemon=True) for u in units]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # -- images -------------------------------------------------------------
    @abstractmethod
    def images(self, every_lab: bool = False) -> list[Any]:
        """The lab's images (by label): each with id, tags and labels."""

    @abstractmethod
    def image_exists(self, name: str) -> bool: ...

    @abstractmethod
    def image_id(self, name: str) -> str: ...

    @abstractmethod
    def image_labels(self, name: str) -> dict[str, str]: ...

    @abstractmethod
    def pull_image(self, name: str) -> None: ...

    @abstractmethod
    def import_image(self, tarball: str, repo: str, tag: str, changes: list[str]) -> None: ...

    @abstractmethod
    def build_image(self, *, context: str, dockerfile: str, target: str | None, tag: str,
                    args: dict[str, str], labels: dict[str, str]) -> str:
        """Build and tag; returns the image id."""

    @abstractmethod
    def tag_image(self, name: str, repo: str, tag: str) -> None: ...

    @abstractmethod
    def remove_image(self, image_id: str) -> None: ...

    def distribute(self, image: str) -> str:
        """The reference units should use for ``image`` (a registry's, by
        digest, where nodes need one); the name itself on one machine."""
        return image

    # -- a run's pieces -----------------------------------------------------
    @abstractmethod
    def network_exists(self, name: str) -> bool: ...

    @abstractmethod
    def create_network(self, name: str, *, internal: bool, labels: dict[str, str]) -> Resource: ...

    @abstractmethod
    def create_volume(self, name: str, labels: dict[str, str]) -> Resource: ...

    def create_marker(self, name: str, labels: dict[str, str]) -> Resource:
        """A small labelled thing that says something about a run (the keep marker)."""
        return self.create_volume(name, labels)

    @abstractmethod
    def check_name_free(self, name: str) -> None:
        """UsageError if a unit of that name exists (the lab's or someone else's)."""

    @abstractmethod
    def start(self, spec: UnitSpec) -> Unit: ...

    @abstractmethod
    def run_once(self, spec: UnitSpec, timeout: float) -> Finished:
        """Start ``spec``, wait for it to exit (EngineTimeout past ``timeout``),
        and return its output; it is removed afterwards, whatever happened."""

    @abstractmethod
    def wait_healthy(self, unit: Unit, timeout: float) -> None:
        """Until its health check passes; EnvironmentProblem with its last
        log lines if it dies or is not healthy within ``timeout`` seconds."""

    def results(self, unit: Unit, path: str) -> list[Output]:
        """The results documents the client swarm ``unit`` wrote to ``path``
        (one per replica; on one machine, the file itself)."""
        got = unit.read_file(path)
        return [Output(got, unit.clock())] if got is not None else []

    # -- helpers every engine shares -----------------------------------------
    @staticmethod
    def tail(unit: Unit, lines: int = 5) -> str:
        try:
            text = unit.logs(tail=lines).decode(errors="replace").strip()
        except EngineError:
            return "(no logs)"
        return " | ".join(text.splitlines()) or "(no output)"

    @staticmethod
    def log_stream(unit: Unit, follow: bool = True) -> Iterator[bytes]:
        """The unit's output, line by line.  The engine's log driver keeps
        writing whatever the reader does, so reading never blocks the unit."""
        pending = b""
        for chunk in unit.logs(stream=True, follow=follow):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from lines
        if pending:
            yield pending


def results_in(output: bytes) -> bytes | None:
    """The results document a client swarm printed in its output (swarm.py
    --results-stdout: `results` events, the gzip of the JSON in base64
    parts), or None if it printed none, or not all of its parts."""
    import base64
    import gzip
    import json

    parts: dict[int, str] = {}
    total = None
    for line in output.splitlines():
        if b'"results"' not in line:
            continue
        try:
            event = json.loads(line)
            if event.get("ev") != "results":
                continue
            parts[int(event["part"])] = str(event["gz64"])
            total = int(event["of"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    if total is None or sorted(parts) != list(range(1, total + 1)):
        return None
    try:
        return gzip.decompress(base64.b64decode("".join(parts[k] for k in sorted(parts))))
    except (ValueError, OSError, EOFError):
        return None
