"""One run's live topology: a private network, its units and volumes.

    with LiveRun(engine, "up", "threads", say=say) as run:
        server = run.start("threads")
        run.wait_healthy(server)
        run.start("swarm", command=[...])
        run.keep()                     # only `lab up`: outlive this process

Leaving the block any other way (an error, Ctrl-C, SIGTERM) captures every
unit's log into the run directory and removes everything the run made, in
one place, so setup can never leak.  Everything is created with the run's
labels; the names carry the run's short id, so runs never collide.  A unit
is whatever the engine's orchestrator starts (lab/engine): a container, or a
Swarm-mode service.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .. import config
from ..engine import (KEEP, LAB, ORCHESTRATOR, OWNER, ROLE, RUN, RUNDIR, SERVICE, VERB, Engine, EngineError,
                      Output, Resource, RunResources, Unit, UnitSpec, me)
from ..errors import EnvironmentProblem
from ..measure.environment import host_environment
from ..plan import compose
from . import images
from .rundir import RunDir, new_id

Say = Callable[[str], None]
_last_dir: list[Path] = []  # the run directory this process made last (for a traceback)


def last_run_dir() -> Path | None:
    return _last_dir[-1] if _last_dir else None


def remember_run_dir(path: Path) -> None:
    """A run directory made without a LiveRun (no engine): where this
    command's traceback belongs, should it have one."""
    _last_dir.append(path)


def forget_runs() -> None:
    """A new command starts: a run an earlier one made (in this process, as
    in the tests) is not where this command's traceback belongs."""
    _last_dir.clear()


class LiveRun:
    def __init__(self, engine: Engine, verb: str, what: str, *, say: Say,
                 name: str | None = None, params: dict[str, Any] | None = None,
                 topology: compose.Topology | None = None) -> None:
        self.engine = engine
        self.say = say
        self.topology = topology or compose.load_topology(config.compose_file())
        self.id, self.short = new_id(verb, what)
        if name:
            self.short = name
        self.prefix = f"{engine.lab}-{self.short}"
        self.kept = False
        self.containers: dict[str, Unit] = {}  # service -> its unit (a container, or a Swarm service)
        self._network: Resource | None = None
        self._volumes: dict[str, Resource] = {}
        self.image = ""
        self._images: dict[str, str] = {}  # service -> the image it runs
        meta: dict[str, Any] = {"verb": verb, "what": what, "params": params or {},
                                "host": host_environment(), "lab": engine.lab, "orchestrator": engine.kind}
        self.dir = RunDir(self.id, meta)
        self._noted = 0  # the engine's notes said so far
        self.labels = {LAB: engine.lab, RUN: self.id, OWNER: me(), VERB: verb,
                       RUNDIR: str(self.dir.path), ORCHESTRATOR: engine.kind}
        _last_dir.append(self.dir.path)

    # -- context: nothing leaks ------------------------------------------
    def __enter__(self) -> "LiveRun":
        if not _last_dir or _last_dir[-1] != self.dir.path:
            _last_dir.append(self.dir.path)  # made before this command began, entered in it
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if self.kept and kind is None:
            return
        status = "complete" if kind is None else (
            "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed")
        self.close(status)

    def close(self, status: str) -> None:
        """Stop every container (SIGTERM, then SIGKILL after its service's
        stop_grace_period), capture the logs, remove every resource, and
        record how the run ended, whatever fails on the way.  Ctrl-C and
        SIGTERM are ignored meanwhile: a second one must not leave half a run."""
        held = _hold_signals()
        try:
            try:
                self.engine.stop(self.resources().units, self.grace)
                self.capture_logs()
            finally:
                try:
                    self.engine.remove(self.resources())
                except BaseException:
                    self.dir.finish("failed" if status == "complete" else status,
                                    cleanup="could not remove everything: `lab down --all`")
                    raise
                self.dir.finish(status)
        finally:
            _restore_signals(held)

    def grace(self, unit: Unit) -> float:
        """The unit's stop_grace_period from compose.yaml (10 s if unset, as in Compose)."""
        service = self.topology.services.get(unit.labels.get(SERVICE, ""))
        return compose.grace(service) if service is not None else compose.DEFAULT_GRACE

    def resources(self) -> RunResources:
        return self.engine.runs(self.id).get(self.id, RunResources(self.id))

    # -- building blocks -------------------------------------------------
    def ensure_image(self) -> str:
        if not self.image:
            self.image = images.ensure_app(self.engine, self.say, self.id)
        return self.image

    def image_for(self, service: str) -> str:
        """The image compose.yaml's ``service`` runs (the app, native, tools...), made if need be."""
        if service not in self._images:
            made = images.for_service(self.engine, self.topology.service(service), self.say, self.id)
            self._images[service] = self.engine.distribute(made)  # a registry's digest where nodes need one
        return self._images[service]

    def network(self, publish: bool = False) -> str:
        """The run's private network, as compose.yaml's `lab` network says:
        internal (no way out of the host) unless a port is to be published."""
        if self._network is None:
            if self.engine.network_exists(self.prefix):
                raise EnvironmentProblem(f"a network named '{self.prefix}' exists already; "
                                         "choose another --name or `lab down --all`")
            spec = self.topology.networks.get("lab") or {}
            self._network = self.engine.create_network(
                self.prefix, internal=bool(spec.get("internal")) and not publish,
                labels={**self.labels, ROLE: "network"})
        return self._network.name

    def volume(self, logical: str) -> str:
        if logical not in self._volumes:
            self._volumes[logical] = self.engine.create_volume(
                f"{self.prefix}-{logical}", {**self.labels, ROLE: logical})
        return self._volumes[logical].name

    def spec(self, service: str, *, command: list[str] | None = None, publish: bool = False,
             environment: dict[str, str] | None = None, role: str | None = None,
             name: str | None = None, network: str | None = None, key: str | None = None,
             **changes: Any) -> UnitSpec:
        """compose.yaml's ``service`` for this run, ready to start (``changes``:
        UnitSpec fields that replace the service's own: healthcheck, aliases,
        replicas...; ``network``: another run's network instead of this run's;
        ``key``: the name it goes by in the run, its logs and its labels,
        default the service's)."""
        spec = self.topology.service(service)
        role = role or ("swarm" if service == "swarm" else "server")
        if role == "swarm" and self.engine.results_in_output and command and \
                any(a.startswith("--out=") for a in command):
            command = [*command, "--results-stdout"]  # the volume is on whichever node it ran
        volumes = {src.split(":")[0]: self.volume(src.split(":")[0])
                   for src in map(str, spec.spec.get("volumes", []))}
        unit = compose.unit_spec(
            spec, image=self.image_for(service), name=name or f"{self.prefix}-{service}",
            network=network or self.network(publish), command=command, publish=publish,
            labels={**self.labels, SERVICE: key or service, ROLE: role}, volumes=volumes, environment=environment)
        return unit.but(role=role, **changes)

    def start(self, service: str, *, command: list[str] | None = None, publish: bool = False,
              environment: dict[str, str] | None = None, key: str | None = None, **changes: Any) -> Unit:
        """Create and start one service of compose.yaml in this run (see
        spec()); it is known afterwards as ``key`` (default: the service)."""
        spec = self.spec(service, command=command, publish=publish, environment=environment, key=key, **changes)
        self.engine.check_name_free(spec.name)
        try:
            unit = self.engine.start(spec)
        finally:
            self._notes()
        self.containers[key or service] = unit
        return unit

    def _notes(self) -> None:
        """What the orchestrator could not enforce of compose.yaml: said once,
        kept in run.json (orchestrator_notes), never dropped in silence."""
        notes = self.engine.notes()
        if len(notes) > self._noted:
            for note in notes[self._noted:]:
                self.say(f"{self.engine.kind} cannot enforce: {note}")
            self._noted = len(notes)
            self.dir.meta["orchestrator_notes"] = notes
            self.dir.write_json("run.json", self.dir.meta)

    def wait_healthy(self, unit: Unit, timeout: float = 30) -> float:
        began = time.monotonic()
        self.engine.wait_healthy(unit, timeout)
        return time.monotonic() - began

    def keep(self) -> None:
        """Mark the run as one that outlives this process (`lab up`)."""
        self.engine.create_marker(f"{self.prefix}-keep", {**self.labels, ROLE: KEEP})
        self.kept = True
        self.dir.finish("kept")  # up until `lab down`, which records "removed"

    # -- what the units left ---------------------------------------------
    def capture_logs(self) -> None:
        for u in self.resources().units:
            try:
                self.dir.write_log(u.labels.get(SERVICE, u.name), u.logs(stdout=True, stderr=True))
            except EngineError:
                pass

    def discard(self, unit: Unit | None, log_name: str) -> None:
        """Keep a unit's log in the run directory, then remove it from the run."""
        if unit is None:
            return
        try:
            self.dir.write_log(log_name, unit.logs(stdout=True, stderr=True))
        except EngineError:
            pass
        for service, c in list(self.containers.items()):
            if c.id == unit.id:
                del self.containers[service]
        self.engine.remove(RunResources(self.id, units=[unit]))

    def read_file(self, service: str, path: str) -> bytes | None:
        """A file from a unit (running or stopped), e.g. results.json on the
        swarm's results volume.  None if it is not there."""
        return self.containers[service].read_file(path)

    def results(self, unit: Unit, path: str) -> list[Output]:
        """The results documents of a client swarm unit, one per replica
        (the engine knows where they are: a volume, or its output)."""
        return self.engine.results(unit, path)


def _hold_signals() -> dict[int, Any]:
    """Ignore SIGINT and SIGTERM (main thread only: Python allows no other)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(held: dict[int, Any]) -> None:
    for sig, handler in held.items():
        signal.signal(sig, handler)

