"""What compare will run: which targets, in which order, each workload's flags and length."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ioschema import DEFAULT_PORT

from ..errors import UsageError
from ..measure import reach
from ..plan import compose, models, scenarios
from ..plan.commands import with_flags
from .workloads import Workload, pick_workloads

# The order the lab's essay introduces the models in; others follow, by name.
MODEL_ORDER = ("blocking", "busypoll", "select", "poll", "epoll", "epoll-edge", "uring", "forking",
               "prefork", "threads", "threadpool", "asyncio", "coroutines", "gevent", "uvloop")
CLIENTS = ("swarm", "wrk")  # load generators: the swarm always, wrk beside it where asked
SERVER_TRACE = "conn"  # connection events only: per-message events would cost what they measure
READY_TIMEOUT = 60.0  # seconds for a server's start event
START_FIELDS = ("python", "backlog", "somaxconn", "nofile", "nofile_hard", "workers", "trace", "pid")


def kind_of(model: models.Model) -> str:
    return str(getattr(model, "kind", None) or model.spec.get("kind") or "model")


def comparable(catalogue: dict[str, models.Model], real: bool = True) -> dict[str, models.Model]:
    """What compare can drive: the models and references, and with ``real``
    the real servers (each in its own protocol)."""
    return {n: m for n, m in catalogue.items() if kind_of(m) in ("model", "reference")
            or (real and kind_of(m) == "server")}


def pick_models(text: str | None, known: list[str], references: list[str] | None = None,
                with_references: bool = True) -> list[str]:
    """The models named (default: every one), the references (the ceiling)
    first unless ``with_references`` is false; a reference named in
    ``text`` runs whatever the flag says."""
    refs = references or []
    first = refs if with_references else []
    if text is None:
        return first + sorted((k for k in known if k not in refs), key=order_key)
    wanted = [m.strip() for m in text.split(",") if m.strip()]
    if not wanted:  # `--models ''` (an unset variable): never the whole default set
        raise UsageError(f"--models {text!r} names no model: name some (A,B,...), or leave the flag out for "
                         "every one")
    unknown = [m for m in wanted if m not in known]
    if unknown or not wanted:
        raise UsageError(f"unknown model '{(unknown or [text])[0]}'; the models are: {', '.join(known)}")
    return list(dict.fromkeys([r for r in first if r not in wanted] + wanted))


def pick_clients(text: str) -> list[str]:
    wanted = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    for c in wanted or [text]:
        if c not in CLIENTS:
            raise UsageError(f"unknown client '{c}'; the clients are: {', '.join(CLIENTS)}")
    return ["swarm"] + [c for c in wanted if c != "swarm"]


def order_key(name: str) -> tuple[int, str]:
    return (MODEL_ORDER.index(name) if name in MODEL_ORDER else len(MODEL_ORDER), name)


@dataclass
class Plan:
    """What one `lab compare` runs: the targets in order, the workloads, the
    repeats, and how each target is started and spoken to."""

    models: list[str]
    workloads: list[Workload]
    repeat: int
    duration: float | None
    server_commands: dict[str, list[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # model -> model | reference
    declares: dict[str, set[str]] = field(default_factory=dict)  # model -> its model.yaml expect keys
    ports: dict[str, int] = field(default_factory=dict)
    protocols: dict[str, str] = field(default_factory=dict)  # model -> what its clients speak
    wrk: bool = False
    replicas: int = 1  # client swarm replicas (Swarm mode)
    clients: list[str] = field(default_factory=lambda: ["swarm"])  # the load generators (CLIENTS)

    def measure(self, w: Workload) -> float:
        return self.duration if self.duration is not None and not w.scenario else w.measure

    def seconds(self, w: Workload) -> float:
        """About how long one run of ``w`` takes, for the progress bars."""
        if w.scenario:  # connecting the clients, then the swarm's --duration, then its results
            return float(w.flags.get("clients", 0)) / float(w.flags.get("ramp") or 1e9) + w.warmup \
                + w.measure + 3.0
        return w.warmup + self.measure(w) + 1.0 + (self.wrk_seconds(w) if self.wrk and w.wrk else 0.0)

    def wrk_seconds(self, w: Workload) -> int:
        return max(1, round(self.measure(w)))  # wrk takes whole seconds

    def skipped(self, model: str, w: Workload) -> str | None:
        """Why ``model`` does not run ``w``: a scenario's workload is its
        check, judged against a model.yaml key the model must declare."""
        if w.scenario and model in self.declares:
            keys = scenarios.get(w.scenario).judges
            if not any(k in self.declares[model] for k in keys):
                return f"its model.yaml makes no `{'`, `'.join(keys)}:` promise for the check to judge"
        return None

    def target(self, model: str) -> str:
        return f"{model}:{self.ports.get(model, DEFAULT_PORT)}"

    def flags(self, model: str, w: Workload) -> dict[str, Any]:
        """``w``'s swarm flags in ``model``'s protocol."""
        return reach.workload_flags(self.protocols.get(model, "line"), w.flags)


@dataclass(frozen=True)
class Request:
    """What `lab compare` was asked for, flag by flag."""

    models: str | None = None  # A,B,...: the targets named (default: the Python models and the ceiling)
    scenario: str | None = None  # NAME[,NAME...]: the workloads (default: every default one)
    repeat: int = 3
    duration: float | None = None
    checks: bool = False
    client: str = "swarm"
    no_native: bool = False
    targets: str = "python"  # python | real
    classify: bool = False
    orchestrator: str | None = None
    swarm_replicas: int = 1


def make_plan(req: Request, catalogue: dict[str, models.Model], topology: compose.Topology) -> Plan:
    """The targets (the ceiling first, then in the essay's order), the
    workloads and each target's server command, kind, port and protocol."""
    refs = [n for n, m in catalogue.items() if kind_of(m) == "reference" and n in topology.services]
    servers = [n for n, m in catalogue.items() if kind_of(m) == "server"]
    usual = [n for n in catalogue if n not in servers]  # by default: the Python models and the ceiling
    chosen = pick_models(req.models, list(catalogue), refs, with_references=not req.no_native) \
        if req.models is not None else pick_models(None, usual, refs, with_references=not req.no_native)
    if req.targets == "real":
        chosen += [n for n in servers if n not in chosen]
    clients = pick_clients(req.client)
    plan = Plan(chosen, pick_workloads(req.scenario), req.repeat, req.duration, wrk="wrk" in clients,
                replicas=req.swarm_replicas, clients=clients)
    for name in chosen:
        if name not in topology.services:
            raise UsageError(f"{name} has a model.yaml but no service in {topology.file}")
        plan.server_commands[name] = with_flags(topology.service(name).spec["command"], trace=SERVER_TRACE)
        plan.kinds[name] = kind_of(catalogue[name])
        plan.declares[name] = set(catalogue[name].expect)
        plan.ports[name] = int(getattr(catalogue[name], "port", DEFAULT_PORT))
        plan.protocols[name] = str(getattr(catalogue[name], "protocol", "line"))
    return plan
