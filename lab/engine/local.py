"""The local orchestrator: each unit is a container on one Docker engine.

The engine need not be on this machine (DOCKER_HOST may name another); when
it is, a container's cgroup files are read here directly (HostCgroup), and
its clock is this machine's.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from functools import partial
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import EndpointConfig, LogConfig, Ulimit

from ioschema import DEFAULT_PORT

from ..errors import EnvironmentProblem, UsageError
from .base import (CPU_FILES, MEMORY_FILES, Clock, Engine, EngineError, EngineTimeout, Exec, Finished, Gone,
                   HostCgroup, Limits, Resource, RunResources, State, Unit)
from .labels import LAB, RUN
from .sdk import SdkEngine, by_run, filters, resource, sdk
from .spec import UnitSpec

SWARM_TASK = "com.docker.swarm.task.id"  # a container label the local orchestrator leaves alone

# Where a local engine keeps a container's cgroup, by controller (cgroup v1
# with the cgroupfs or the systemd driver, then v2, where one directory has both).
HOST_DIRS = {
    "cpu": ("/sys/fs/cgroup/cpuacct/docker/{id}", "/sys/fs/cgroup/cpu,cpuacct/docker/{id}",
            "/sys/fs/cgroup/cpuacct/system.slice/docker-{id}.scope",
            "/sys/fs/cgroup/system.slice/docker-{id}.scope", "/sys/fs/cgroup/docker/{id}"),
    "memory": ("/sys/fs/cgroup/memory/docker/{id}", "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope",
               "/sys/fs/cgroup/system.slice/docker-{id}.scope", "/sys/fs/cgroup/docker/{id}"),
}


def _first_dir(templates: tuple[str, ...], names: tuple[str, ...], cid: str) -> str | None:
    for template in templates:
        path = template.format(id=cid)
        if any(os.access(os.path.join(path, n), os.R_OK) for n in names):
            return path
    return None


def host_cgroup(container_id: str) -> HostCgroup | None:
    """The container's cgroup directories on this machine (its id is in the
    path, so they cannot be another machine's), or None."""
    cpu = _first_dir(HOST_DIRS["cpu"], CPU_FILES, container_id)
    return HostCgroup(cpu, _first_dir(HOST_DIRS["memory"], MEMORY_FILES, container_id)) if cpu else None


class ContainerUnit(Unit):
    """One container.  Also what a Swarm task's container is, seen from the
    engine of the node it runs on."""

    def __init__(self, container: Container, clock: Clock | None = None) -> None:
        self.raw = container
        self.name, self.id = container.name, container.id
        self.labels = dict(container.labels or {})
        self._clock = clock
        self._cgroup: HostCgroup | None | bool = False  # False: not looked for yet

    def _reload(self) -> dict[str, Any]:
        with sdk(self.name):
            self.raw.reload()
        return self.raw.attrs

    def state(self) -> State:
        attrs = self._reload()
        s: dict[str, Any] = attrs["State"]
        nets: dict[str, dict[str, Any]] = attrs["NetworkSettings"]["Networks"] or {}
        health: dict[str, Any] = s.get("Health") or {}
        ip = next(iter(nets.values()), {}).get("IPAddress", "")
        return State(s["Status"], bool(s.get("Running")), health.get("Status", "-"), s.get("ExitCode"), ip,
                     attrs.get("Created", ""))

    def published(self) -> str | None:
        ports = self._reload()["NetworkSettings"].get("Ports") or {}
        bound = ports.get(f"{DEFAULT_PORT}/tcp")
        return f"{bound[0]['HostIp']}:{bound[0]['HostPort']}" if bound else None

    def command(self) -> list[str]:
        return list(self.raw.attrs["Config"]["Cmd"] or [])

    def image_id(self) -> str:
        return str(self.raw.attrs["Image"])

    def limits(self) -> Limits:
        host = self.raw.attrs.get("HostConfig") or {}
        return Limits(host.get("PidsLimit") or None, host.get("Memory") or None, host.get("NanoCpus") or None)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.raw.wait(timeout=timeout).get("StatusCode")
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            raise EngineTimeout(f"{self.name} was still running after {timeout:g} s") from None
        except docker.errors.NotFound:
            raise Gone(f"{self.name} is gone") from None
        except docker.errors.APIError as exc:
            raise EngineError(str(exc.explanation or exc)) from None

    def stop(self, grace: float) -> None:
        with sdk(self.name):
            self.raw.reload()
            if self.raw.status == "running":
                self.raw.stop(timeout=max(0, round(grace)))

    def remove(self) -> None:
        with sdk(self.name):
            self.raw.remove(force=True, v=True)

    def signal(self, name: str) -> None:
        with sdk(self.name):
            self.raw.kill(signal=name)

    def logs(self, *, stream: bool = False, follow: bool = False, tail: int | str | None = None,
             stdout: bool = True, stderr: bool = True) -> Any:
        kwargs: dict[str, Any] = {"stdout": stdout, "stderr": stderr}
        if stream:
            kwargs.update(stream=True, follow=follow)
        if tail is not None:
            kwargs["tail"] = tail
        with sdk(self.name):
            return self.raw.logs(**kwargs)

    def exec(self, argv: list[str], *, stdout: bool = True, stderr: bool = True,
             split: bool = False) -> Exec:
        with sdk(f"exec in {self.name}"):
            code, output = self.raw.exec_run(argv, stdout=stdout, stderr=stderr, demux=split)
        if split:
            out, err = output or (None, None)
            return Exec(code, out or b"", err or b"")
        return Exec(code, output or b"")

    def read_file(self, path: str) -> bytes | None:
        try:
            stream, _ = self.raw.get_archive(path)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            raise EngineError(str(exc.explanation or exc)) from None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member else None
            return extracted.read() if extracted else None

    def host_cgroup(self) -> HostCgroup | None:
        if self._cgroup is False:
            self._cgroup = host_cgroup(self.id)
        return self._cgroup  # type: ignore[return-value]

    def stats(self) -> dict[str, Any]:
        with sdk(f"stats of {self.name}"):
            try:
                return dict(self.raw.stats(stream=False, one_shot=True))
            except docker.errors.InvalidVersion:  # an engine before API 1.41 takes two readings, a second apart
                return dict(self.raw.stats(stream=False))

    def top(self) -> dict[str, Any]:
        with sdk(f"top of {self.name}"):
            return dict(self.raw.top(ps_args="-eLf"))

    def clock(self) -> Clock:
        if self._clock is None:  # on another machine, unless told (a Swarm node's measured clock)
            self._clock = Clock() if self.host_cgroup() else Clock(0.0, None, "assumed: another machine")
        return self._clock


def measure_clock(unit: Unit, rounds: int = 5) -> Clock:
    """Its machine's CLOCK_MONOTONIC against ours (Cristian's method): read
    it by exec a few times; the round trip that was shortest bounds the error."""
    best: tuple[float, float] | None = None
    probe = ["python3", "-S", "-c", "import time; print(repr(time.monotonic()))"]
    for _ in range(rounds):
        began = time.monotonic()
        try:
            done = unit.exec(probe, stderr=False)
            theirs = float(done.output.decode().strip())
        except (EngineError, ValueError):
            continue
        ended = time.monotonic()
        half = (ended - began) / 2
        if best is None or half < best[1]:
            best = (theirs - (began + half), half)
    if best is None:
        return Clock(0.0, None, "not measured (no python3 to exec): assumed equal")
    return Clock(best[0], best[1], "measured by exec")


def create_kwargs(spec: UnitSpec) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` from a UnitSpec."""
    kw: dict[str, Any] = {"image": spec.image, "name": spec.name, "detach": True, "command": spec.command,
                          "labels": dict(spec.labels), "environment": dict(spec.environment)}
    if spec.user is not None:
        kw["user"] = spec.user
    if spec.working_dir is not None:
        kw["working_dir"] = spec.working_dir
    if spec.read_only:
        kw["read_only"] = True
    for key in ("cap_drop", "cap_add", "security_opt"):
        if getattr(spec, key):
            kw[key] = list(getattr(spec, key))
    if spec.init is not None:
        kw["init"] = spec.init
    if spec.pids_limit is not None:
        kw["pids_limit"] = spec.pids_limit
    if spec.mem_limit is not None:
        kw["mem_limit"] = spec.mem_limit
    if spec.tmpfs:
        kw["tmpfs"] = dict(spec.tmpfs)
    if spec.nano_cpus:
        kw["nano_cpus"] = spec.nano_cpus
    if spec.sysctls:
        kw["sysctls"] = dict(spec.sysctls)
    if spec.log_driver:
        kw["log_config"] = LogConfig(type=spec.log_driver, config=dict(spec.log_options))
    if spec.ulimits:
        kw["ulimits"] = [Ulimit(name=k, soft=s, hard=h) for k, (s, h) in spec.ulimits.items()]
    if spec.healthcheck is not None:
        kw["healthcheck"] = dict(spec.healthcheck)
    if spec.pid_mode:
        kw["pid_mode"] = spec.pid_mode
    if spec.network_mode:  # no network of the run at all (network_mode none): nothing to alias
        kw["network_mode"] = spec.network_mode
    else:
        kw["network"] = spec.network
        kw["networking_config"] = {spec.network: EndpointConfig("1.41", aliases=list(spec.aliases))}
    if spec.mounts:
        kw["volumes"] = {m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                         for m in spec.mounts}
    if spec.publish:
        kw["ports"] = {f"{DEFAULT_PORT}/tcp": ("127.0.0.1", None)}  # never on every interface
    return kw


class LocalEngine(SdkEngine):
    kind = "local"
    swarm_by_exec = True

    # -- labelled things ------------------------------------------------------
    def runs(self, run: str | None = None, every_lab: bool = False) -> dict[str, RunResources]:
        flt = filters(self.lab, run, every_lab)
        found: dict[str, RunResources] = {}

        group = partial(by_run, found, self.kind)

        with sdk("listing the lab's resources"):
            for c in self.client.containers.list(all=True, filters=flt, ignore_removed=True):
                if SWARM_TASK in (c.labels or {}):
                    continue  # a Swarm service's task: that orchestrator's (lab/engine/swarmmode.py)
                unit = ContainerUnit(c)
                group(unit.labels).units.append(unit)
            for n in self.client.networks.list(filters=flt):
                if n.attrs.get("Scope") == "swarm":
                    continue  # a Swarm run's overlay network
                net = resource("network", n)
                group(net.labels).networks.append(net)
        for v in self._volumes(flt):
            group(v.labels).volumes.append(v)
        return found

    def remove(self, res: RunResources) -> list[str]:
        removed: list[str] = []
        errors: list[str] = []
        for u in res.units:
            try:
                u.raw.remove(force=True, v=True)
                removed.append(f"container {u.name}")
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                errors.append(f"container {u.name}: {exc.explanation}")
        self._remove_resources([*res.networks, *res.volumes, *res.others], removed, errors)
        if errors:
            raise EnvironmentProblem("could not remove " + "; ".join(errors))
        return removed

    def unit(self, ref: Any) -> ContainerUnit:
        """A unit for a container, by name or id (or the SDK's object itself:
        one Compose made, say)."""
        if isinstance(ref, Container):
            return ContainerUnit(ref)
        with sdk(f"container {ref}"):
            return ContainerUnit(self.client.containers.get(ref))

    # -- a run's pieces -----------------------------------------------------
    def network_exists(self, name: str) -> bool:
        with sdk("networks"):
            return bool(self.client.networks.list(names=[name]))

    def create_network(self, name: str, *, internal: bool, labels: dict[str, str]) -> Resource:
        with sdk(f"network {name}"):
            return resource("network", self.client.networks.create(
                name, driver="bridge", internal=internal, labels=labels))

    def check_name_free(self, name: str) -> None:
        try:
            c = self.client.containers.get(name)
        except docker.errors.NotFound:
            return
        if c.labels.get(LAB) == self.lab:
            raise UsageError(f"'{name}' is already running as part of run {c.labels.get(RUN)}; "
                             f"`lab down {c.labels.get(RUN)}` first, or choose another --name")
        raise UsageError(f"the name '{name}' is taken by a container the lab did not make "
                         f"({c.short_id}); choose another --name or remove that container")

    def start(self, spec: UnitSpec) -> ContainerUnit:
        if spec.replicas != 1:
            raise UsageError(f"{spec.service}: {spec.replicas} replicas need --orchestrator swarm "
                             "(the local orchestrator runs one container per service)")
        container = self._create(spec, "start")
        unit = ContainerUnit(container)
        try:
            container.start()
            container.reload()
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot start {spec.name}: {exc.explanation}") from None
        return unit

    def _create(self, spec: UnitSpec, doing: str) -> Container:
        try:
            return self.client.containers.create(**create_kwargs(spec))
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot {doing} {spec.name}: {exc.explanation}") from None

    def run_once(self, spec: UnitSpec, timeout: float) -> Finished:
        container = self._create(spec, "create")
        unit = ContainerUnit(container)
        try:
            began = time.monotonic()
            with sdk(spec.name):
                container.start()
            code = unit.wait(timeout)
            seconds = time.monotonic() - began
            out, err = unit.logs(stderr=False), unit.logs(stdout=False)
        finally:
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                pass  # the run's cleanup removes it by label
        return Finished(code, out, err, seconds)

    def wait_healthy(self, unit: Unit, timeout: float) -> None:
        """On the engine's event stream (no polling)."""
        with sdk("events"):
            events = self.client.events(decode=True, filters={"container": unit.id, "type": "container"})
        timer = threading.Timer(timeout, events.close)
        timer.start()
        try:
            state = unit.state()
            if state.health == "healthy":
                return
            if not state.running:
                self._died(unit)
            for event in events:
                status = event.get("status", "")
                if status == "health_status: healthy":
                    return
                if status in ("die", "oom", "destroy"):
                    self._died(unit)
        except (docker.errors.APIError, OSError, AttributeError, EngineTimeout):
            pass  # the stream was closed by the timer
        finally:
            timer.cancel()
            events.close()
        if unit.state().health == "healthy":
            return
        raise EnvironmentProblem(f"{unit.name} was not healthy within {timeout:.0f}s; last log lines: "
                                 f"{Engine.tail(unit)}")

    def _died(self, unit: Unit) -> None:
        code = unit.state().exit_code
        raise EnvironmentProblem(f"{unit.name} exited (code {code}) before it was healthy; "
                                 f"last log lines: {Engine.tail(unit)}")
