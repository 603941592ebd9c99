"""The boundary with the Docker engine: every SDK call the lab makes is here.

Labels are the source of truth.  Everything the lab creates carries

    org.iolab.lab    the lab's name (LAB_NAME), so two labs never mix
    org.iolab.run    the run it belongs to
    org.iolab.owner  host:pid:start-time of the lab process that made it

and status and cleanup find things by these labels only, never by name.  A
run whose owner process is gone (killed with SIGKILL, say) is dead: the next
lab command removes it.  `lab up` leaves its run behind on purpose, so once
its topology is healthy it adds a small labelled volume, the keep marker,
that says "this run outlives its owner until `lab down`".
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import docker
import docker.errors
from docker.models.containers import Container

from . import config
from .errors import EnvironmentProblem, UsageError

LAB, RUN, OWNER = f"{config.LABEL}.lab", f"{config.LABEL}.run", f"{config.LABEL}.owner"
ROLE, SERVICE, VERB, RUNDIR = (f"{config.LABEL}.{k}" for k in ("role", "service", "verb", "rundir"))
KEEP = "keep"  # ROLE of the marker volume that keeps a `lab up` run alive
# Images carry their own keys: a container inherits its image's labels, and a
# container someone else makes from a lab image must not pass for the lab's.
IMAGE_LAB, IMAGE_RUN = f"{config.LABEL}.image", f"{config.LABEL}.image-run"


def connect() -> docker.DockerClient:
    """A client for the engine DOCKER_HOST (or the default socket) names,
    or one line on what to do when there is none."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        text = str(exc)
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if "Permission denied" in text or "PermissionError" in text:
            raise EnvironmentProblem(
                f"no permission to use the Docker engine at {where}: add your user to the "
                "'docker' group (sudo usermod -aG docker $USER, then log in again) or run as root"
            ) from None
        raise EnvironmentProblem(
            f"cannot reach a Docker engine at {where}: start it (sudo systemctl start docker) "
            "or point DOCKER_HOST at one"
        ) from None


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process, to tell a live owner from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def me() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(owner: str | None) -> bool | None:
    """True/False for an owner on this host; None when we cannot tell
    (another host, or no owner: made by plain Compose)."""
    if not owner or owner.count(":") != 2:
        return None
    host, pid, started = owner.split(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    now = _start_time(int(pid))
    if now is not None or os.path.exists("/proc/self/stat"):
        return now == started  # Linux: a reused pid has another start time
    try:  # no /proc here: the pid alone has to do
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@dataclass
class RunResources:
    run: str
    containers: list[Container] = field(default_factory=list)
    networks: list[Any] = field(default_factory=list)
    volumes: list[Any] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        for thing in (*self.containers, *self.networks, *self.volumes):
            labels = thing.labels if hasattr(thing, "labels") else thing.attrs.get("Labels") or {}
            if labels:
                return labels
        return {}

    @property
    def kept(self) -> bool:
        return any((v.attrs.get("Labels") or {}).get(ROLE) == KEEP for v in self.volumes)

    @property
    def empty(self) -> bool:
        return not (self.containers or self.networks or self.volumes)


class Engine:
    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.client = client or connect()
        self.lab = config.lab_name()

    # -- finding by label ------------------------------------------------
    def _filters(self, run: str | None, every_lab: bool) -> dict[str, Any]:
        labels = [LAB if every_lab else f"{LAB}={self.lab}"]
        if run:
            labels.append(f"{RUN}={run}")
        return {"label": labels}

    def runs(self, run: str | None = None, every_lab: bool = False) -> dict[str, RunResources]:
        """Every lab resource on the engine, grouped by run."""
        flt = self._filters(run, every_lab)
        found: dict[str, RunResources] = {}

        def group(thing: Any, labels: dict[str, str] | None) -> RunResources:
            key = (labels or {}).get(RUN, "?")
            return found.setdefault(key, RunResources(key))

        for c in self.client.containers.list(all=True, filters=flt):
            group(c, c.labels).containers.append(c)
        for n in self.client.networks.list(filters=flt):
            group(n, n.attrs.get("Labels")).networks.append(n)
        for v in self.client.volumes.list(filters=flt):
            group(v, v.attrs.get("Labels")).volumes.append(v)
        return found

    def images(self, every_lab: bool = False) -> list[Any]:
        return self.client.images.list(
            filters={"label": IMAGE_LAB if every_lab else f"{IMAGE_LAB}={self.lab}"})

    # -- removing --------------------------------------------------------
    def remove(self, res: RunResources, grace: int = 2) -> list[str]:
        """Stop and remove a run's containers, then its networks and volumes.
        Collects every error and reports them together at the end."""
        removed, errors = [], []
        for c in res.containers:
            try:
                c.remove(force=True, v=True)  # SIGKILL: the run is over, logs were kept
                removed.append(f"container {c.name}")
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                errors.append(f"container {c.name}: {exc.explanation}")
        for thing, kind in [(n, "network") for n in res.networks] + [(v, "volume") for v in res.volumes]:
            try:
                thing.remove()
                removed.append(f"{kind} {thing.name}")
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                errors.append(f"{kind} {thing.name}: {exc.explanation}")
        if errors:
            raise EnvironmentProblem("could not remove " + "; ".join(errors))
        return removed

    def sweep_dead(self) -> list[str]:
        """Remove runs whose lab process died without cleaning up (any lab
        name: a dead owner cannot object).  Returns one line per run removed."""
        said = []
        for run, res in self.runs(every_lab=True).items():
            if res.kept or owner_alive(res.labels.get(OWNER)) is not False:
                continue
            things = self.remove(res)
            owner = res.labels.get(OWNER, "?").split(":")
            said.append(f"removed dead run {run} (its lab process {owner[1]} is gone): "
                        f"{len(things)} resources")
        return said

    # -- containers ------------------------------------------------------
    def check_name_free(self, name: str) -> None:
        """A name the lab wants must not belong to someone else's container."""
        try:
            c = self.client.containers.get(name)
        except docker.errors.NotFound:
            return
        if c.labels.get(LAB) == self.lab:
            raise UsageError(f"'{name}' is already running as part of run {c.labels.get(RUN)}; "
                             f"`lab down {c.labels.get(RUN)}` first, or choose another --name")
        raise UsageError(f"the name '{name}' is taken by a container the lab did not make "
                         f"({c.short_id}); choose another --name or remove that container")

    def wait_healthy(self, container: Container, timeout: float) -> None:
        """Wait for the container's health check to pass, on the engine's
        event stream (no polling); fail with its last log lines if it dies
        or does not become healthy within ``timeout`` seconds."""
        events = self.client.events(decode=True, filters={"container": container.id, "type": "container"})
        timer = threading.Timer(timeout, events.close)
        timer.start()
        try:
            container.reload()
            state = container.attrs["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                return
            if not state.get("Running"):
                self._died(container)
            for event in events:
                status = event.get("status", "")
                if status == "health_status: healthy":
                    return
                if status in ("die", "oom", "destroy"):
                    self._died(container)
        except (docker.errors.APIError, OSError, AttributeError):
            pass  # the stream was closed by the timer
        finally:
            timer.cancel()
            events.close()
        container.reload()
        if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
            return
        raise EnvironmentProblem(
            f"{container.name} was not healthy within {timeout:.0f}s; last log lines: "
            f"{self.tail(container)}")

    def _died(self, container: Container) -> None:
        container.reload()
        code = container.attrs["State"].get("ExitCode")
        raise EnvironmentProblem(f"{container.name} exited (code {code}) before it was healthy; "
                                 f"last log lines: {self.tail(container)}")

    @staticmethod
    def tail(container: Container, lines: int = 5) -> str:
        try:
            text = container.logs(tail=lines).decode(errors="replace").strip()
        except docker.errors.APIError:
            return "(no logs)"
        return " | ".join(text.splitlines()) or "(no output)"

    @staticmethod
    def log_stream(container: Container, follow: bool = True) -> Iterator[bytes]:
        """The container's output, line by line.  The json-file driver keeps
        writing whatever the reader does, so reading never blocks the container."""
        pending = b""
        for chunk in container.logs(stream=True, follow=follow, stdout=True, stderr=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from lines
        if pending:
            yield pending
