"""Swarm mode's decisions, as plain data: nodes, placement, the registry rule,
and a compose.yaml service (a UnitSpec) as the body of a Swarm service.

No engine here: tests/unit/test_swarm_orchestrator.py gives these any swarm
(fake node lists), since only one engine can run where the tests run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docker.utils import parse_bytes

from ..errors import EnvironmentProblem, UsageError
from .spec import UnitSpec

ROLE_LABEL = "iolab.role"  # node label: server | load
ENGINE_LABEL = "iolab.engine"  # node label: that node's engine endpoint (tcp://host:2376)
PLACED = {"server": "server", "swarm": "load", "tools": "load", "client": "load"}  # unit role -> node role
RESULTS_TMPFS = 64 << 20  # bytes: a named volume becomes a tmpfs this size in each task


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    labels: dict[str, str] = field(default_factory=dict)
    ready: bool = True
    cpus: int | None = None
    manager: bool = False

    @classmethod
    def of(cls, attrs: dict[str, Any]) -> "Node":
        spec, desc = attrs.get("Spec") or {}, attrs.get("Description") or {}
        return cls(attrs["ID"], desc.get("Hostname", attrs["ID"][:12]), dict(spec.get("Labels") or {}),
                   (attrs.get("Status") or {}).get("State") == "ready" and spec.get("Availability") == "active",
                   int((desc.get("Resources") or {}).get("NanoCPUs", 0) / 1e9) or None,
                   "ManagerStatus" in attrs)


def constraints(role: str, nodes: list[Node]) -> list[str]:
    """Where a unit of ``role`` may run: the nodes labelled for it, if any node is."""
    want = PLACED.get(role)
    if want and any(n.labels.get(ROLE_LABEL) == want for n in nodes):
        return [f"node.labels.{ROLE_LABEL}=={want}"]
    return []


def registry_needed(nodes: list[Node], registry: str | None) -> None:
    """Several nodes pull their images from a registry; one node has its own."""
    ready = [n for n in nodes if n.ready]
    if len(ready) > 1 and not registry:
        raise EnvironmentProblem(
            f"this swarm has {len(ready)} nodes and the lab's images are on this engine only: set "
            "LAB_REGISTRY=HOST:PORT (a registry every node can pull from) and the lab pushes them there")


# -- a compose.yaml service as a Swarm service ---------------------------------

def service_create(spec: UnitSpec, network_id: str, where: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The body of POST /services/create for ``spec`` (API 1.41), and what of
    the spec it cannot express, in words."""
    if spec.pid_mode or spec.network_mode:  # a service cannot join a container's PID namespace
        raise UsageError(f"{spec.service}: sharing another container's PID namespace (the tracing sidecar of "
                         "`lab run syscalls`) needs --orchestrator local: Swarm mode cannot do it")
    notes: list[str] = []
    task: dict[str, Any] = {
        "ContainerSpec": _container(spec, _mounts(spec, notes)), "Resources": {"Limits": _limits(spec)},
        "RestartPolicy": {"Condition": "none"},  # a crashed server stays down, as a container does
        "Placement": {"Constraints": where},
        "Networks": [{"Target": network_id, "Aliases": list(spec.aliases)}],
    }
    for opt in spec.security_opt:  # no-new-privileges: ContainerSpec has no such field before API 1.44
        notes.append(f"security_opt {opt} is not enforced on any service (a Swarm service's spec has "
                     "no such field on API 1.41)")
    if spec.cap_add:
        notes.append(f"{spec.service}: cap_add {', '.join(spec.cap_add)} is not granted on Swarm mode")
    if spec.log_driver:
        task["LogDriver"] = {"Name": spec.log_driver, "Options": dict(spec.log_options)}
    body = {"name": spec.name, "labels": dict(spec.labels), "task_template": task,
            "mode": {"Replicated": {"Replicas": spec.replicas}}, "endpoint_spec": {"Mode": "dnsrr"}}
    return body, notes


def _mounts(spec: UnitSpec, notes: list[str]) -> list[dict[str, Any]]:
    """The tmpfs mounts, and each named volume as a tmpfs of its own (a volume is one node's)."""
    mounts: list[dict[str, Any]] = []
    for path, options in spec.tmpfs.items():
        opts = dict(o.split("=", 1) for o in options.split(",") if "=" in o)
        tmpfs: dict[str, Any] = {}
        if "size" in opts:
            tmpfs["SizeBytes"] = parse_bytes(opts["size"])
        if "mode" in opts:
            tmpfs["Mode"] = int(opts["mode"], 8)
        left = sorted(set(opts) - {"size", "mode"})
        if left:
            notes.append(f"{spec.service}: the tmpfs at {path} loses {', '.join(left)} (API 1.41 sets a "
                         "tmpfs's size and mode only: it is root's)")
        mounts.append({"Type": "tmpfs", "Target": path, "TmpfsOptions": tmpfs})
    for m in spec.mounts:
        mounts.append({"Type": "tmpfs", "Target": m.target, "ReadOnly": m.read_only,
                       "TmpfsOptions": {"SizeBytes": RESULTS_TMPFS}})  # the image's mode there: 1777
        notes.append(f"{spec.service}: the volume at {m.target} is a tmpfs in each task (a volume is one "
                     "node's; what the swarm writes there comes back in its output)")
    return mounts


def _container(spec: UnitSpec, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's ContainerSpec: image, command, environment, the box it runs in."""
    env = dict(spec.environment)
    if spec.replicas > 1:
        env["IOLAB_REPLICA"] = f"{{{{.Task.Slot}}}}/{spec.replicas}"  # each replica its share
    container: dict[str, Any] = {
        "Image": spec.image, "Labels": dict(spec.labels), "Env": [f"{k}={v}" for k, v in env.items()],
        "StopGracePeriod": int(spec.stop_grace * 1e9), "Mounts": mounts,
    }
    if spec.command is not None:
        container["Command"] = list(spec.command)
    for key, value in (("User", spec.user), ("Dir", spec.working_dir), ("Init", spec.init)):
        if value is not None:
            container[key] = value
    if spec.read_only:
        container["ReadOnly"] = True
    if spec.cap_drop:
        container["CapabilityDrop"] = list(spec.cap_drop)
    if spec.sysctls:
        container["Sysctls"] = dict(spec.sysctls)
    if spec.ulimits:
        container["Ulimits"] = [{"Name": k, "Soft": s, "Hard": h} for k, (s, h) in spec.ulimits.items()]
    if spec.healthcheck is not None:
        container["Healthcheck"] = {{"test": "Test", "interval": "Interval", "timeout": "Timeout",
                                     "start_period": "StartPeriod", "retries": "Retries"}[k]: v
                                    for k, v in spec.healthcheck.items()}
    return container


def _limits(spec: UnitSpec) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if spec.nano_cpus:
        limits["NanoCPUs"] = spec.nano_cpus
    if spec.mem_limit is not None:
        limits["MemoryBytes"] = parse_bytes(spec.mem_limit) if isinstance(spec.mem_limit, str) else spec.mem_limit
    if spec.pids_limit is not None:
        limits["Pids"] = spec.pids_limit
    return limits
