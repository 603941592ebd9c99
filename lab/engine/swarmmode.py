"""The Swarm-mode orchestrator: each unit is a service, placed on labelled nodes.

The engine named by DOCKER_HOST must be a Swarm manager.  A compose.yaml
service becomes one service of the run (replicated, never restarted: a
server that crashes stays down, as a container would), on the run's overlay
network, which is internal unless told otherwise, with `endpoint_mode:
dnsrr` (a name resolves to the tasks' own addresses; the virtual-IP mode
needs IPVS, which some machines lack: "No route to host").

Placement, by node label, when any node carries it:

    iolab.role=server   the server services run there
    iolab.role=load     the client swarm's replicas, the tools and other clients

--swarm-replicas N runs the swarm as N replicas (each told its share through
IOLAB_REPLICA={{.Task.Slot}}/N, services/swarm/swarm.py --replica), whose
results come back in their output (swarm.py --results-stdout) and are
merged by the lab (lab/measure/merge.py).

Images: with LAB_REGISTRY set, each image is pushed there and services use it
by digest; one node uses the engine's own images; several nodes and no
registry is refused in one line.

A task on this machine is read as a container is (its cgroup files here);
on another node, through that node's engine when the node says where it is
(label iolab.engine=tcp://HOST:2376), else it cannot be measured there and
the figures that need it say so.

What API 1.41 cannot express of compose.yaml's box (no-new-privileges, a
tmpfs's owner, host-only port publishing) is said in notes(), once per run,
and kept in run.json.  The decisions themselves (placement, the registry
rule, the service's spec) are plain data in swarmmode_spec.py.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Any, Callable

import docker
import docker.errors

from ..errors import EnvironmentProblem, UsageError
from .base import (SAME, Clock, Engine, EngineError, EngineTimeout, Exec, Finished, Gone, HostCgroup, Limits,
                   Output, Resource, RunResources, State, Unit, Unreachable, results_in)
from .labels import LAB, RUN
from .local import ContainerUnit, measure_clock
from .sdk import SdkEngine, by_run, connect, filters, resource, sdk, split_image
from .spec import UnitSpec
from .swarmmode_spec import ENGINE_LABEL, ROLE_LABEL, Node, constraints, registry_needed, service_create

SERVICE_ID = "com.docker.swarm.service.id"  # the label a task container carries
GONE_TIMEOUT = 30.0  # seconds lab down waits for removed services' task containers to go
TERMINAL = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
NO_SWARM_MANAGER = ("--orchestrator swarm needs a Swarm manager: run `docker swarm init` on this engine, "
                    "or point DOCKER_HOST at a manager")


# -- a service as a unit -----------------------------------------------------------

def _latest(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest task of each slot, by slot."""
    newest: dict[int, dict[str, Any]] = {}
    for t in tasks:
        slot = int(t.get("Slot") or 0)
        if slot not in newest or t.get("CreatedAt", "") > newest[slot].get("CreatedAt", ""):
            newest[slot] = t
    return [newest[s] for s in sorted(newest)]


class ServiceUnit(Unit):
    def __init__(self, engine: "SwarmModeEngine", service: Any) -> None:
        self.engine, self.raw = engine, service
        self.id, self.name = service.id, service.name
        spec = service.attrs.get("Spec") or {}
        self.labels = dict(spec.get("Labels") or {})
        self.replicas = int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") or 1)
        self._spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        self._limits = ((spec.get("TaskTemplate") or {}).get("Resources") or {}).get("Limits") or {}
        self._containers: dict[str, ContainerUnit] = {}

    # -- its tasks ---------------------------------------------------------
    def tasks(self) -> list[dict[str, Any]]:
        with sdk(f"tasks of {self.name}"):
            return _latest(self.engine.client.api.tasks(filters={"service": self.id}))

    def task(self) -> dict[str, Any]:
        found = self.tasks()
        if not found:
            raise Gone(f"{self.name} has no task")
        return found[0]

    def container(self, task: dict[str, Any] | None = None) -> ContainerUnit:
        """The task's container, through the engine of the node it runs on."""
        task = task or self.task()
        cid = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        if not cid:
            raise Gone(f"{self.name}'s task has no container ({(task.get('Status') or {}).get('State')})")
        if cid not in self._containers:
            client = self.engine.node_client(task.get("NodeID", ""), self.name)
            with sdk(f"the container of {self.name}"):
                self._containers[cid] = ContainerUnit(client.containers.get(cid))
        return self._containers[cid]

    def parts(self) -> list[Unit]:
        out: list[Unit] = []
        for t in self.tasks():
            try:
                out.append(self.container(t))
            except EngineError:
                continue
        return out

    # -- state ---------------------------------------------------------------
    def state(self) -> State:
        tasks = self.tasks()
        if not tasks:
            raise Gone(f"{self.name} has no task")
        running = [t for t in tasks if t["Status"]["State"] == "running"]
        t = running[0] if running else tasks[0]
        status = t["Status"]
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        ips = [a.split("/")[0] for n in t.get("NetworksAttachments") or [] for a in n.get("Addresses") or []
               if (n.get("Network") or {}).get("Spec", {}).get("Name") != "ingress"]
        healthy = "Healthcheck" in self._spec and self._spec["Healthcheck"].get("Test") != ["NONE"]
        return State(status["State"], bool(running), ("healthy" if running else "starting") if healthy else "-",
                     code, ips[0] if ips else "", t.get("CreatedAt", ""), self.engine.hostname(t.get("NodeID", "")))

    def published(self) -> str | None:
        return None  # Swarm mode publishes nothing (the lab refuses --publish there)

    def command(self) -> list[str]:
        return list(self._spec.get("Command") or []) + list(self._spec.get("Args") or [])

    def image_id(self) -> str:
        try:
            return self.container().image_id()
        except EngineError:
            return str(self._spec.get("Image", ""))

    def limits(self) -> Limits:
        return Limits(self._limits.get("Pids") or None, self._limits.get("MemoryBytes") or None,
                      self._limits.get("NanoCPUs") or None)

    # -- life ------------------------------------------------------------------
    def wait(self, timeout: float) -> int | None:
        """Until every replica's task has ended (polled: Swarm sends no task events)."""
        deadline = time.monotonic() + timeout
        while True:
            tasks = self.tasks()
            if len(tasks) >= self.replicas and all(t["Status"]["State"] in TERMINAL for t in tasks):
                codes = [(t["Status"].get("ContainerStatus") or {}).get("ExitCode") for t in tasks]
                known = [c for c in codes if c is not None]
                return max(known) if known else None
            if time.monotonic() >= deadline:
                raise EngineTimeout(f"{self.name} was still running after {timeout:g} s")
            time.sleep(0.1)

    def stop(self, grace: float) -> None:
        """SIGTERM to each task's container, SIGKILL after ``grace``: the task
        ends and stays (it is never restarted), its output with it.  A task on
        a node this engine cannot reach is stopped by scaling the service to
        none, which makes Swarm forget it, output and all, soon after."""
        far = False
        for task in self.tasks():
            if task["Status"]["State"] in TERMINAL:
                continue
            try:
                self.container(task).stop(grace)
            except Unreachable:
                far = True
            except Gone:
                continue
        if not far:
            return
        with sdk(self.name):
            self.raw.reload()
            self.raw.scale(0)
        deadline = time.monotonic() + grace + 15
        while time.monotonic() < deadline and not all(t["Status"]["State"] in TERMINAL for t in self.tasks()):
            time.sleep(0.1)

    def remove(self) -> None:
        with sdk(self.name):
            self.raw.remove()

    # -- what it said, ran and wrote ----------------------------------------------
    def logs(self, *, stream: bool = False, follow: bool = False, tail: int | str | None = None,
             stdout: bool = True, stderr: bool = True, details: bool = False) -> Any:
        with sdk(f"logs of {self.name}"):
            chunks = self.engine.client.api.service_logs(
                self.id, details=details, follow=follow if stream else False, stdout=stdout, stderr=stderr,
                tail="all" if tail is None else tail, is_tty=False)
        if stream:
            return chunks
        with sdk(f"logs of {self.name}"):
            return b"".join(chunks)

    def exec(self, argv: list[str], *, stdout: bool = True, stderr: bool = True, split: bool = False) -> Exec:
        return self.container().exec(argv, stdout=stdout, stderr=stderr, split=split)

    def read_file(self, path: str) -> bytes | None:
        return self.container().read_file(path)

    def host_cgroup(self) -> HostCgroup | None:
        try:
            return self.container().host_cgroup()
        except EngineError:
            return None

    def stats(self) -> dict[str, Any]:
        return self.container().stats()

    def top(self) -> dict[str, Any]:
        return self.container().top()

    def clock(self) -> Clock:
        task = self.task()
        return self.engine.clock_of(task.get("NodeID", ""), lambda: self.container(task))


# -- the engine --------------------------------------------------------------------

class SwarmModeEngine(SdkEngine):
    kind = "swarm"
    swarm_by_exec = False  # a swarm unit per probe: its replicas may be anywhere
    results_in_output = True

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        super().__init__(client)
        state = self.info().get("Swarm") or {}
        if state.get("LocalNodeState") != "active" or not state.get("ControlAvailable"):
            raise EnvironmentProblem(NO_SWARM_MANAGER)
        self.node_id = str(state.get("NodeID", ""))
        self._notes: list[str] = []
        self._clients: dict[str, docker.DockerClient] = {}
        self._clocks: dict[str, Clock] = {}
        self._pushed: dict[str, str] = {}

    def notes(self) -> list[str]:
        return list(self._notes)

    def _note(self, notes: list[str]) -> None:
        self._notes += [n for n in notes if n not in self._notes]

    # -- nodes ------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        with sdk("nodes"):
            return [Node.of(n.attrs) for n in self.client.nodes.list()]

    def hostname(self, node_id: str) -> str:
        return next((n.hostname for n in self.nodes() if n.id == node_id), node_id[:12])

    def node_client(self, node_id: str, what: str) -> docker.DockerClient:
        """The engine of the node a task runs on: this one, or its iolab.engine label's."""
        if node_id == self.node_id:
            return self.client
        if node_id not in self._clients:
            node = next((n for n in self.nodes() if n.id == node_id), None)
            url = node.labels.get(ENGINE_LABEL) if node else None
            if not url:
                name = node.hostname if node else node_id[:12]
                raise Unreachable(f"{what} runs on node {name}, and this lab cannot reach that node's engine: "
                                  f"label the node {ENGINE_LABEL}=tcp://HOST:PORT (its engine's endpoint)")
            try:
                self._clients[node_id] = connect(url)
            except EnvironmentProblem as exc:
                raise Unreachable(f"{what} runs on node {node.hostname if node else node_id}: {exc}") from None
        return self._clients[node_id]

    def clock_of(self, node_id: str, container: Callable[[], ContainerUnit]) -> Clock:
        """A node's monotonic clock against this machine's, measured once per
        node (by exec in ``container()``, one of the run's on that node)."""
        if node_id not in self._clocks:
            try:
                found = container()
                self._clocks[node_id] = SAME if found.host_cgroup() else measure_clock(found)
            except Unreachable:
                self._clocks[node_id] = Clock(0.0, None, f"not measured: node {self.hostname(node_id)} has no "
                                                        f"{ENGINE_LABEL} endpoint; assumed equal")
        return self._clocks[node_id]

    def describe(self) -> dict[str, Any]:
        found = super().describe()
        found["nodes"] = [{"hostname": n.hostname, "labels": n.labels, "ready": n.ready, "cpus": n.cpus,
                           "manager": n.manager} for n in self.nodes()]
        return found

    # -- images ------------------------------------------------------------------
    def distribute(self, image: str) -> str:
        registry = os.environ.get("LAB_REGISTRY", "").strip().rstrip("/")
        registry_needed(self.nodes(), registry)
        if not registry:
            return image
        if image not in self._pushed:
            self._pushed[image] = self.push(image, registry)
        return self._pushed[image]

    def push(self, image: str, registry: str) -> str:
        """Push ``image`` to ``registry``; its reference there, by digest."""
        repo, tag = split_image(image)
        if "@" in repo:
            repo = repo.split("@", 1)[0]
        target = f"{registry}/{repo.split('/', 1)[-1] if repo.startswith(registry + '/') else repo}"
        digest = None
        with sdk(f"pushing {image} to {registry}"):
            self.client.images.get(image).tag(target, tag)
            for line in self.client.api.push(target, tag=tag, stream=True, decode=True):
                if line.get("error"):
                    raise EngineError(f"pushing {image} to {registry}: {line['error']}")
                digest = (line.get("aux") or {}).get("Digest") or digest
        if not digest:
            raise EngineError(f"pushing {image} to {registry}: the registry sent no digest")
        return f"{target}@{digest}"

    # -- labelled things ---------------------------------------------------------
    def runs(self, run: str | None = None, every_lab: bool = False) -> dict[str, RunResources]:
        flt = filters(self.lab, run, every_lab)
        found: dict[str, RunResources] = {}

        group = partial(by_run, found, self.kind)

        with sdk("listing the lab's services"):
            for s in self.client.services.list(filters=flt):
                unit = ServiceUnit(self, s)
                group(unit.labels).units.append(unit)
            for n in self.client.networks.list(filters=flt):
                if n.attrs.get("Scope") == "swarm":  # a bridge of the local orchestrator is not ours
                    net = resource("network", n)
                    group(net.labels).networks.append(net)
            for c in self.client.configs.list(filters=flt):
                conf = resource("config", c)
                group(conf.labels).others.append(conf)
        return found

    def remove(self, res: RunResources) -> list[str]:
        """Remove the run's services, wait (bounded) until their task
        containers are gone from this node, then its networks and configs.
        Task containers still there at the end are an EngineTimeout naming them."""
        removed: list[str] = []
        errors: list[str] = []
        tasks = self._task_containers([u.id for u in res.units])
        self._remove_resources([Resource("service", u.name, u.id, u.labels, u.raw) for u in res.units],
                               removed, errors)
        left = self._wait_gone([u.id for u in res.units])
        removed += [f"container {name}" for name in tasks if name not in left]
        nets = list(res.networks)
        for _ in range(50):  # a network goes once the removed services' tasks have left it
            nets = [n for n in nets if not self._remove_one(n, removed, errors, retry=True)]
            if not nets:
                break
            time.sleep(0.2)
        for n in nets:
            self._remove_one(n, removed, errors, retry=False)
        self._wait_unlisted([n.id for n in res.networks])
        self._remove_resources(res.volumes + res.others, removed, errors)
        if left:
            raise EngineTimeout(f"run {res.run}: its services are removed, but task containers are still "
                                f"there after {GONE_TIMEOUT:g} s: {', '.join(left)} (removed meanwhile: "
                                f"{len(removed)}; run `lab down {res.run}` again)")
        if errors:
            raise EnvironmentProblem("could not remove " + "; ".join(errors))
        return removed

    def _wait_unlisted(self, network_ids: list[str], timeout: float = 15) -> None:
        """Until the manager no longer lists removed overlay networks (it forgets
        them a moment after it said they were removed): the next command must
        not find them."""
        deadline = time.monotonic() + timeout
        for nid in network_ids:
            while time.monotonic() < deadline:
                with sdk("networks"):
                    if not any(n.id == nid for n in self.client.networks.list(filters={"id": nid})):
                        break
                time.sleep(0.1)

    def _task_containers(self, service_ids: list[str]) -> list[str]:
        """The names of this node's task containers of these services."""
        names: list[str] = []
        for sid in service_ids:
            with sdk("containers"):
                names += [c.name for c in self.client.containers.list(
                    all=True, filters={"label": f"{SERVICE_ID}={sid}"}, ignore_removed=True)]
        return names

    def _wait_gone(self, service_ids: list[str], timeout: float | None = None) -> list[str]:
        """Until this node's task containers of removed services are gone
        (polled: the engine sends no event for a task container's removal);
        the names of those still there when ``timeout`` runs out."""
        deadline = time.monotonic() + (GONE_TIMEOUT if timeout is None else timeout)
        while left := self._task_containers(service_ids):
            if time.monotonic() >= deadline:
                return left
            time.sleep(0.1)
        return []

    # -- a run's pieces -----------------------------------------------------------
    def network_exists(self, name: str) -> bool:
        with sdk("networks"):
            return any(n.name == name for n in self.client.networks.list(names=[name]))

    def create_network(self, name: str, *, internal: bool, labels: dict[str, str]) -> Resource:
        with sdk(f"network {name}"):
            return resource("network", self.client.networks.create(
                name, driver="overlay", internal=internal, attachable=False, labels=labels))

    def create_volume(self, name: str, labels: dict[str, str]) -> Resource:
        """Nothing is made: a Swarm run's volumes are a tmpfs in each task (see service_create)."""
        return Resource("volume", name, "", dict(labels))

    def create_marker(self, name: str, labels: dict[str, str]) -> Resource:
        """A config: cluster-wide, labelled, and seen from every manager."""
        with sdk(f"config {name}"):
            return resource("config", self.client.configs.create(name=name, data=b"kept", labels=labels))

    def check_name_free(self, name: str) -> None:
        with sdk("services"):
            taken = [s for s in self.client.services.list(filters={"name": name}) if s.name == name]
        if not taken:
            return
        labels = (taken[0].attrs.get("Spec") or {}).get("Labels") or {}
        if labels.get(LAB) == self.lab:
            raise UsageError(f"'{name}' is already running as part of run {labels.get(RUN)}; "
                             f"`lab down {labels.get(RUN)} --orchestrator swarm` first, or choose another --name")
        raise UsageError(f"the name '{name}' is taken by a service the lab did not make; choose another --name")

    def _network_id(self, name: str) -> str:
        with sdk(f"network {name}"):
            found = [n for n in self.client.networks.list(names=[name]) if n.name == name]
        if not found:
            raise EngineError(f"no network {name}")
        return str(found[0].id)

    def start(self, spec: UnitSpec) -> ServiceUnit:
        if spec.publish:
            raise UsageError("--publish is for the local orchestrator: Swarm mode would publish the port on "
                             "every interface of the node (reach the server from the run's network instead)")
        body, notes = service_create(spec, self._network_id(spec.network), constraints(spec.role, self.nodes()))
        self._note(notes)
        with sdk(f"cannot start {spec.name}"):
            created = self.client.api.create_service(**body)
            unit = ServiceUnit(self, self.client.services.get(created["ID"]))
        self._started(unit, 120)
        return unit

    def _started(self, unit: ServiceUnit, timeout: float) -> None:
        """Until each replica's task has a container (or has failed to get one)."""
        deadline = time.monotonic() + timeout
        while True:
            tasks = unit.tasks()
            if len(tasks) >= unit.replicas and all(
                    ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
                    or t["Status"]["State"] in TERMINAL for t in tasks):
                failed = [t for t in tasks if t["Status"]["State"] in ("rejected", "failed")
                          and not (t["Status"].get("ContainerStatus") or {}).get("ContainerID")]
                if failed:
                    raise EngineError(f"{unit.name} could not start: {failed[0]['Status'].get('Err')}")
                return
            if time.monotonic() >= deadline:
                why = "; ".join(sorted({f"{t['Status']['State']}: {t['Status'].get('Message', '')} "
                                        f"{t['Status'].get('Err', '')}".strip() for t in tasks})) or "no task"
                raise EngineError(f"{unit.name} was not placed within {timeout:g} s ({why}); check the "
                                  f"nodes' {ROLE_LABEL} labels and that they have its image")
            time.sleep(0.1)

    def run_once(self, spec: UnitSpec, timeout: float) -> Finished:
        began = time.monotonic()
        unit = self.start(spec)
        try:
            code = unit.wait(timeout)
            seconds = time.monotonic() - began
            out, err = unit.logs(stderr=False), unit.logs(stdout=False)
        finally:
            try:
                unit.remove()
            except EngineError:
                pass  # the run's cleanup removes it by label
        return Finished(code, out, err, seconds)

    def wait_healthy(self, unit: Unit, timeout: float) -> None:
        """A task with a health check is running only once healthy (Swarm waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            tasks = unit.tasks() if isinstance(unit, ServiceUnit) else []
            if tasks and all(t["Status"]["State"] == "running" for t in tasks):
                return
            ended = [t for t in tasks if t["Status"]["State"] in TERMINAL]
            if ended:
                s = ended[0]["Status"]
                code = (s.get("ContainerStatus") or {}).get("ExitCode")
                raise EnvironmentProblem(f"{unit.name} ended ({s['State']}, code {code}: {s.get('Err', '')}) "
                                         f"before it was healthy; last log lines: {Engine.tail(unit)}")
            if time.monotonic() >= deadline:
                raise EnvironmentProblem(f"{unit.name} was not healthy within {timeout:.0f}s; last log "
                                         f"lines: {Engine.tail(unit)}")
            time.sleep(0.1)

    def results(self, unit: Unit, path: str) -> list[Output]:
        """Each replica's results, from its own lines of the service's output."""
        if not isinstance(unit, ServiceUnit):
            return super().results(unit, path)
        tasks = {t["ID"]: t for t in unit.tasks()}
        lines: dict[str, list[bytes]] = {}
        for line in unit.logs(details=True, stderr=False).splitlines():
            detail, _, message = line.partition(b" ")
            attrs = dict(kv.split("=", 1) for kv in detail.decode(errors="replace").split(",") if "=" in kv)
            lines.setdefault(attrs.get("com.docker.swarm.task.id", ""), []).append(message)
        found = []
        for task_id, task in tasks.items():
            data = results_in(b"\n".join(lines.get(task_id, [])))
            if data is not None:
                node = task.get("NodeID", "")
                found.append(Output(data, self.clock_of(node, partial(unit.container, task)), self.hostname(node),
                                    f"{task.get('Slot')}/{unit.replicas}"))
        return found

