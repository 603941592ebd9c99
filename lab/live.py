"""One run's live topology: a private network, its containers and volumes.

    with LiveRun(engine, "up", "threads", say=say) as run:
        server = run.start("threads")
        run.wait_healthy(server)
        run.start("swarm", command=[...])
        run.keep()                     # only `lab up`: outlive this process

Leaving the block any other way (an error, Ctrl-C, SIGTERM) captures every
container's log into the run directory and removes everything the run made,
in one place, so setup can never leak.  Everything is created with the run's
labels; the names carry the run's short id, so runs never collide.
"""

from __future__ import annotations

import io
import json
import signal
import tarfile
import time
from typing import Any, Callable

import docker.errors
from docker.models.containers import Container

from . import compose, config, images
from .engine import KEEP, LAB, OWNER, ROLE, RUN, RUNDIR, SERVICE, VERB, Engine, RunResources, me
from .errors import EnvironmentProblem
from .runs import RunDir, host_environment, new_id

Say = Callable[[str], None]


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
        self.containers: dict[str, Container] = {}
        self._network: Any = None
        self._volumes: dict[str, Any] = {}
        self.image = ""
        self.dir = RunDir(self.id, {"verb": verb, "what": what, "params": params or {},
                                    "host": host_environment(), "lab": engine.lab})
        self.labels = {LAB: engine.lab, RUN: self.id, OWNER: me(), VERB: verb,
                       RUNDIR: str(self.dir.path)}

    # -- context: nothing leaks ------------------------------------------
    def __enter__(self) -> "LiveRun":
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if self.kept and kind is None:
            return
        status = "complete" if kind is None else (
            "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed")
        self.close(status)

    def close(self, status: str) -> None:
        """Capture logs, remove every resource, record how the run ended.
        Ctrl-C is ignored meanwhile: a second one must not leave half a run."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            try:
                self.capture_logs()
            finally:
                self.engine.remove(self.resources())
                self.dir.finish(status)
        finally:
            signal.signal(signal.SIGINT, previous)

    def resources(self) -> RunResources:
        return self.engine.runs(self.id).get(self.id, RunResources(self.id))

    # -- building blocks -------------------------------------------------
    def ensure_image(self) -> str:
        if not self.image:
            self.image = images.ensure_app(self.engine, self.say, self.id)
        return self.image

    def network(self, publish: bool = False) -> str:
        """The run's private network, as compose.yaml's `lab` network says:
        internal (no way out of the host) unless a port is to be published."""
        if self._network is None:
            if self.engine.client.networks.list(names=[self.prefix]):
                raise EnvironmentProblem(f"a network named '{self.prefix}' exists already; "
                                         "choose another --name or `lab down --all`")
            spec = self.topology.networks.get("lab") or {}
            self._network = self.engine.client.networks.create(
                self.prefix, driver="bridge", internal=bool(spec.get("internal")) and not publish,
                labels={**self.labels, ROLE: "network"})
        return self._network.name

    def volume(self, logical: str) -> str:
        if logical not in self._volumes:
            self._volumes[logical] = self.engine.client.volumes.create(
                f"{self.prefix}-{logical}", labels={**self.labels, ROLE: logical})
        return self._volumes[logical].name

    def start(self, service: str, *, command: list[str] | None = None, publish: bool = False,
              environment: dict[str, str] | None = None, **overrides: Any) -> Container:
        """Create and start one service of compose.yaml in this run
        (``overrides``: create() arguments that replace the service's own)."""
        spec = self.topology.service(service)
        name = f"{self.prefix}-{service}"
        self.engine.check_name_free(name)
        image = self.ensure_image()
        network = self.network(publish)
        volumes = {src.split(":")[0]: self.volume(src.split(":")[0])
                   for src in map(str, spec.spec.get("volumes", []))}
        kwargs = compose.create_kwargs(
            spec, image=image, name=name, network=network, command=command, publish=publish,
            labels={**self.labels, SERVICE: service, ROLE: "swarm" if service == "swarm" else "server"},
            volumes=volumes, environment=environment)
        kwargs.update(overrides)
        try:
            container = self.engine.client.containers.create(**kwargs)
            self.containers[service] = container
            container.start()
        except docker.errors.APIError as exc:
            raise EnvironmentProblem(f"cannot start {name}: {exc.explanation}") from None
        container.reload()
        return container

    def wait_healthy(self, container: Container, timeout: float = 30) -> float:
        began = time.monotonic()
        self.engine.wait_healthy(container, timeout)
        return time.monotonic() - began

    def keep(self) -> None:
        """Mark the run as one that outlives this process (`lab up`)."""
        self.engine.client.volumes.create(f"{self.prefix}-keep", labels={**self.labels, ROLE: KEEP})
        self.kept = True

    # -- what the containers left ----------------------------------------
    def capture_logs(self) -> None:
        for c in self.resources().containers:
            try:
                self.dir.write_log(c.labels.get(SERVICE, c.name), c.logs(stdout=True, stderr=True))
            except docker.errors.APIError:
                pass

    def read_file(self, service: str, path: str) -> bytes | None:
        """A file from a container (running or stopped), e.g. results.json
        on the swarm's results volume.  None if it is not there."""
        try:
            stream, _ = self.containers[service].get_archive(path)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member else None
            return extracted.read() if extracted else None

    def swarm_results(self) -> dict[str, Any] | None:
        raw = self.read_file("swarm", "/results/results.json")
        return json.loads(raw) if raw else None


def container_ip(container: Container) -> str:
    nets = container.attrs["NetworkSettings"]["Networks"]
    return next(iter(nets.values()))["IPAddress"] if nets else ""


def published_port(container: Container) -> str | None:
    ports = container.attrs["NetworkSettings"].get("Ports") or {}
    bound = ports.get("12345/tcp")
    return f"{bound[0]['HostIp']}:{bound[0]['HostPort']}" if bound else None
