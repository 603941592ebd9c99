"""Scenario files: the probes behind each check, as data.

A scenario (scenarios/<name>.yaml, or any file given by path) says what to
do to a model and which expectation of its model.yaml the outcome is judged
against:

    name: served-at-once
    claim: >-
      What the check shows, in a sentence or two.
    judge: served_at_once      # a judge in lab/checks/judges.py (JUDGE_KEYS below)
    expect: peak_served        # the model.yaml key judged (one the judge names)
    also: [thread_count]       # further keys its judge judges from the same probes;
                               # a target that declares none of them is skipped
    fresh: false               # true: a new server container first
    order: 10                  # checks run in this order (destructive ones last)
    probes:                    # one or more swarm runs, by name
      main:
        clients: max(3, workers + 1)    # a number, or an expression of `workers`
        pattern: interval
        interval: 50
        count: 20
        duration: 15
        at:                    # scripted requests: at t seconds, client c sends a line
          - {t: 0.6, client: 1, send: "BLOCK 500"}

Probe keys are the swarm's own flags.  `workers` is the model's pool size
(0 for models without a pool).  Every number has a range (RANGES, TOP_RANGES
and SETTINGS below: finite, least and most, whole where the swarm takes a
whole number), checked for every pool size an expression may meet; the
warm-up and each scripted request fall inside the probe's duration.  Every
error names the file and the line.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config
from ..errors import UsageError
from .models import EXPECT, OPTIONAL_EXPECT, Model
from ..yamlfile import LineDict, load, where

SCENARIOS = config.ROOT / "scenarios"
TOP_KEYS = {"name", "claim", "judge", "expect", "also", "fresh", "order", "probes", "idle",
            "settings", "server", "default"}
NUMBERS = {"clients", "interval", "count", "duration", "rate", "ramp", "warmup", "pipeline",
           "size", "active", "workers", "connect-timeout", "slow-clients", "pace", "piece"}  # swarm flags that take a number
TEXTS = {"pattern", "message", "trace"}  # swarm flags that take text
OPTIONS = {"sample", "before", "after", "memory", "cpu", "strace", "switches"}  # for the lab: sample
# the server; STATS before/after; memory (and listen-queue counters) once every client is in;
# the server's CPU read every 50 ms meanwhile; its system calls counted by the tracing
# sidecar (lab/run/tracer.py); its tasks' context switches sampled from /proc
PROBE_KEYS = NUMBERS | TEXTS | OPTIONS | {"at", "only"}  # only: [keys]: run it for a model that declares one
NOFILE = 20000  # descriptors per container (compose.yaml ulimits), within this host's hard limit
RESERVED_FDS = 64  # the swarm's own files, pipes and sockets besides its clients
CLIENTS_MAX = NOFILE - RESERVED_FDS  # each client is a descriptor
WEEK_S = 7 * 24 * 3600.0
# Each number a probe gives the swarm: (least, most, whole number), as the
# swarm takes it (services/swarm/swarm.py) and as a container can hold it.
RANGES: dict[str, tuple[float, float, bool]] = {
    "clients": (1, CLIENTS_MAX, True), "active": (0, CLIENTS_MAX, True), "workers": (1, 64, True),
    "count": (1, 10_000_000, True), "pipeline": (1, 100_000, True), "size": (1, 16 * 2**20, True),
    "interval": (0.1, 3_600_000, False),  # milliseconds between one client's messages
    "rate": (0.001, 1_000_000, False), "ramp": (0.001, 1_000_000, False),  # per second
    "slow-clients": (0, CLIENTS_MAX, True), "piece": (1, 16 * 2**20, True),
    "pace": (0.1, 3_600_000, False),  # milliseconds between the pieces of a slow client's request
    "duration": (0.1, WEEK_S, False), "warmup": (0, WEEK_S, False), "connect-timeout": (0.1, 3600, False),
}
# Top-level numbers and settings: (least, most, whole number)
TOP_RANGES: dict[str, tuple[float, float, bool]] = {"order": (0, 10_000, True), "idle": (0, 600, False)}
SETTINGS: dict[str, tuple[float, float, bool]] = {"peak_within_s": (0.1, 3600, False)}  # runner.py reads it
CHECK_WORKERS = (0, 1, 4)  # pool sizes an expression of `workers` is tried with when the file is loaded
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv}
_FUNCS = {"max": max, "min": min}
# The judges (lab/checks/judges.py, client_side.py) by name, and the model.yaml
# keys each gives verdicts on: what a scenario's `judge:`, `expect:` and `also:` may say.
JUDGE_KEYS: dict[str, tuple[str, ...]] = {
    "idle_cpu": ("idle_cpu",),
    "served_at_once": ("peak_served", "thread_count"),
    "growth": ("threads", "processes"),
    "would_block": ("wouldblock_counter",),
    "stalls": ("block_stalls_others", "sleep_stalls_others", "work_stalls_others"),
    "gil": ("cpu_parallel",),
    "shared_counter": ("lost_updates",),
    "triggering": ("triggering",),
    "many_descriptors": ("fd_limit",),
    "faults": ("crash_takes", "raise_takes"),
    "c10k": ("c10k", "thread_count"),
    "slow_stalls": ("slow_stalls_others",),
    "slow_clients": ("slow_clients",),
    "syscalls": ("eagain_per_reply", "drains_to_eagain", "scan_cost", "switches_per_reply",
                 "uring_enter_per_reply"),
}


@dataclass
class ProbeSpec:
    name: str
    values: dict[str, Any]
    file: Path
    line: int

    def runs_for(self, declared: dict[str, Any]) -> bool:
        """Does this probe run for a model declaring ``declared`` (its `only:` keys)?"""
        return "only" not in self.values or any(k in declared for k in self.values["only"])

    def flags(self, workers: int) -> list[str]:
        """The swarm's command-line flags for a model with ``workers``."""
        out = []
        for key, value in self.values.items():
            if key == "at":
                out += [f"--at={a['t']}:{a['client']}:{a['send']}" for a in value]
            elif key in NUMBERS:
                out.append(f"--{key}={self.number(key, workers)}")
            elif key in TEXTS:
                out.append(f"--{key}={value}")
        return out

    def number(self, key: str, workers: int, default: Any = None) -> Any:
        """A number of the probe for a model with ``workers``, within its range."""
        if key not in self.values:
            return default
        return in_range(key, evaluate(self.values[key], workers, self.file, self.line), RANGES[key],
                        f"{self.file}:{self.line}")


@dataclass
class Scenario:
    """One check: what to run, and which model.yaml keys its judge reads."""

    name: str
    claim: str
    judge: str
    expect: str
    file: Path
    fresh: bool = False
    order: int = 50
    idle: float = 0.0
    probes: dict[str, ProbeSpec] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    server: list[str] = field(default_factory=list)  # extra server flags, e.g. --backlog=4096
    also: list[str] = field(default_factory=list)  # further model.yaml keys the judge reads
    default: bool = True  # False: runs only when named (--scenario), e.g. the heavy c10k

    @property
    def judges(self) -> list[str]:
        return [self.expect, *self.also]


def evaluate(value: Any, workers: int, file: Path, line: int) -> Any:
    """A number, or a small arithmetic expression of `workers` (a string)."""
    if not isinstance(value, str):
        return value

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id == "workers":
            return workers
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            return _FUNCS[node.func.id](*(walk(a) for a in node.args))
        raise ValueError(ast.dump(node)[:60])

    try:
        return walk(ast.parse(value, mode="eval"))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError):
        raise UsageError(f"{file}:{line}: '{value}' is not a number or an expression of "
                         f"`workers` (+ - * // max min)") from None


def in_range(key: str, value: Any, bounds: tuple[float, float, bool], where_: str) -> Any:
    """``value`` if it is a finite number within ``bounds`` (least, most, whole); else a UsageError."""
    least, most, whole = bounds
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (whole and value != int(value)):
        raise UsageError(f"{where_}: {key} must be {kind} from {least:g} to {most:g}, got {value!r}")
    if not least <= value <= most:
        raise UsageError(f"{where_}: {key} is {value:g}; it must be from {least:g} to {most:g}")
    return int(value) if whole else value


def _check_at(actions: Any, file: Path, spec: LineDict) -> None:
    if not isinstance(actions, list):
        raise UsageError(f"{where(file, spec, 'at')}: 'at' is a list of {{t, client, send}}")
    for a in actions:
        if not isinstance(a, dict) or set(a) != {"t", "client", "send"}:
            raise UsageError(f"{where(file, a if isinstance(a, LineDict) else spec, None)}: "
                             f"each 'at' entry needs exactly t, client and send")
        t, client = a["t"], a["client"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= WEEK_S \
                or isinstance(client, bool) or not isinstance(client, int) or not 1 <= client <= CLIENTS_MAX \
                or not isinstance(a["send"], str) or "\n" in a["send"]:
            raise UsageError(f"{where(file, a, None)}: t must be >= 0 (seconds, finite), client a number >= 1, "
                             f"send one line of text")


def load_scenario(file: Path) -> Scenario:
    """A scenario file, checked: every error names the file and the line."""
    doc = load(file)
    if not isinstance(doc, LineDict):
        raise UsageError(f"{file}: a scenario is a mapping (name, claim, judge, expect, probes)")
    for key in doc:
        if key not in TOP_KEYS:
            raise UsageError(f"{where(file, doc, key)}: unknown key '{key}' (known: {', '.join(sorted(TOP_KEYS))})")
    for key in ("name", "claim", "judge", "expect"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise UsageError(f"{where(file, doc, key if key in doc else None)}: '{key}' must be text")
    if doc["judge"] not in JUDGE_KEYS:
        raise UsageError(f"{where(file, doc, 'judge')}: unknown judge '{doc['judge']}' "
                         f"(known: {', '.join(sorted(JUDGE_KEYS))})")
    probes = _probes(doc, file)
    if not probes and not doc.get("idle"):
        raise UsageError(f"{where(file, doc)}: a scenario needs 'probes' (or an 'idle' window)")
    also = doc.get("also") or []
    for key, value in [("expect", doc["expect"]), *(("also", k) for k in also)]:
        if value not in EXPECT and value not in OPTIONAL_EXPECT:
            raise UsageError(f"{where(file, doc, key)}: '{value}' is not a model.yaml expectation")
        if value not in JUDGE_KEYS[doc["judge"]]:
            raise UsageError(f"{where(file, doc, key)}: judge '{doc['judge']}' does not judge '{value}' "
                             f"(it judges: {', '.join(JUDGE_KEYS[doc['judge']])})")
    server = doc.get("server") or []
    if not isinstance(server, list) or not all(isinstance(a, str) and a.startswith("--") for a in server):
        raise UsageError(f"{where(file, doc, 'server')}: 'server' is a list of server flags (--backlog=4096)")
    order, idle, settings = _top_numbers(doc, file)
    return Scenario(doc["name"], " ".join(doc["claim"].split()), doc["judge"], doc["expect"], file,
                    _flag(doc, "fresh", False, file), order, idle, probes, settings, server=list(server),
                    also=list(also), default=_flag(doc, "default", True, file))


def _top_numbers(doc: LineDict, file: Path) -> tuple[int, float, dict[str, Any]]:
    """order, idle and the settings, each a number in its range."""
    order = in_range("order", doc.get("order", 50), TOP_RANGES["order"], where(file, doc, "order"))
    idle = float(in_range("idle", doc.get("idle", 0), TOP_RANGES["idle"], where(file, doc, "idle")))
    settings = doc.get("settings") or LineDict()
    if not isinstance(settings, LineDict):
        raise UsageError(f"{where(file, doc, 'settings')}: 'settings' maps names to numbers "
                         f"(known: {', '.join(SETTINGS)})")
    for key, value in settings.items():
        if key not in SETTINGS:
            raise UsageError(f"{where(file, settings, key)}: unknown setting '{key}' (known: {', '.join(SETTINGS)})")
        in_range(key, value, SETTINGS[key], where(file, settings, key))
    return order, idle, dict(settings)


def _flag(doc: LineDict, key: str, default: bool, file: Path) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise UsageError(f"{where(file, doc, key)}: {key} is true or false, got {value!r}")
    return value


def _probes(doc: LineDict, file: Path) -> dict[str, ProbeSpec]:
    """The scenario's probes, each key checked against what the swarm and the lab take."""
    probes: dict[str, ProbeSpec] = {}
    raw_probes = doc.get("probes") or LineDict()
    if not isinstance(raw_probes, LineDict):
        raise UsageError(f"{where(file, doc, 'probes')}: 'probes' maps probe names to swarm settings")
    for name, spec in raw_probes.items():
        if not isinstance(spec, LineDict):
            raise UsageError(f"{where(file, raw_probes, name)}: probe '{name}' must be a mapping")
        for key, value in spec.items():
            _check_probe_key(name, key, value, file, spec)
        if "duration" not in spec:
            raise UsageError(f"{where(file, raw_probes, name)}: probe '{name}' needs a 'duration' "
                             "(every probe ends by itself)")
        _check_together(name, spec, file)
        probes[name] = ProbeSpec(name, dict(spec), file, spec.line)
    return probes


def _check_together(name: str, spec: LineDict, file: Path) -> None:
    """Numbers that bound each other: the warm-up and the scripted requests
    inside the duration, the active clients and those scripted among the clients."""
    for workers in CHECK_WORKERS:
        n = {k: evaluate(v, workers, file, spec.line_of(k)) for k, v in spec.items() if k in NUMBERS}
        if n.get("warmup", 0) >= n["duration"]:
            raise UsageError(f"{where(file, spec, 'warmup')}: probe '{name}' warms up for {n['warmup']:g} s of "
                             f"its {n['duration']:g}: nothing would be measured")
        for part in ("active", "slow-clients"):
            if n.get(part, 0) > n.get("clients", 3):  # the swarm's default: 3 clients
                raise UsageError(f"{where(file, spec, part)}: probe '{name}' has {n[part]} {part} of "
                                 f"{n.get('clients', 3)} clients")
        late = [a for a in spec.get("at") or [] if a["t"] > n["duration"] or a["client"] > n.get("clients", a["client"])]
        if late:
            raise UsageError(f"{where(file, late[0], None)}: probe '{name}' sends at {late[0]['t']} s to client "
                             f"{late[0]['client']}: outside its {n['duration']:g} s or its clients")


def _check_probe_key(name: str, key: str, value: Any, file: Path, spec: LineDict) -> None:
    if key not in PROBE_KEYS:
        raise UsageError(f"{where(file, spec, key)}: probe '{name}' has unknown key '{key}' "
                         f"(known: {', '.join(sorted(PROBE_KEYS))})")
    if key == "at":
        _check_at(value, file, spec)
    elif key == "only":
        if not isinstance(value, list) or not value or not all(k in EXPECT or k in OPTIONAL_EXPECT for k in value):
            raise UsageError(f"{where(file, spec, key)}: 'only' is a list of model.yaml expectations: the probe "
                             "runs for a model that declares one of them")
    elif key in OPTIONS and not isinstance(value, bool):
        raise UsageError(f"{where(file, spec, key)}: {key} is true or false")
    elif key in NUMBERS:  # within its range for every pool size it may meet
        for workers in CHECK_WORKERS:
            in_range(key, evaluate(value, workers, file, spec.line_of(key)), RANGES[key], where(file, spec, key))


def all_scenarios(root: Path | None = None) -> dict[str, Scenario]:
    found = {}
    for f in sorted((root or SCENARIOS).glob("*.yaml")):
        s = load_scenario(f)
        found[s.name] = s
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def get(name_or_path: str) -> Scenario:
    """A scenario by name (scenarios/<name>.yaml), or a file given by path:
    anything with a slash or a .yaml/.yml ending is a path."""
    if not name_or_path.strip():  # `--scenario ''` (an unset variable)
        raise UsageError(f"the scenario named is empty ({name_or_path!r}): name one of {', '.join(all_scenarios())} "
                         "or a YAML file")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not path.is_file():
            raise UsageError(f"{name_or_path}: no such file (a scenario is a name from scenarios/ "
                             f"or the path of a YAML file)")
        return load_scenario(path)
    found = all_scenarios()
    if name_or_path not in found:
        raise UsageError(f"unknown scenario '{name_or_path}'; the scenarios are: {', '.join(found)}")
    return found[name_or_path]


def traced(scenario: Scenario) -> bool:
    """Does a probe of ``scenario`` count system calls (the tracing sidecar)?"""
    return any(p.values.get("strace") for p in scenario.probes.values())


def traceable(orchestrator: str, found: list[Scenario]) -> None:
    """The tracing sidecar shares the server's PID namespace: a container
    can, a Swarm-mode service cannot.  Refused before anything starts."""
    traces = [s.name for s in found if traced(s)]
    if traces and orchestrator == "swarm":
        raise UsageError(f"{traces[0]} counts system calls from a sidecar in the server's PID namespace, "
                         "which Swarm mode cannot give: use --orchestrator local")


def judged_keys(model: Model, scenario: Scenario) -> list[str]:
    """The keys of ``scenario`` that ``model`` declares: what a check of it judges."""
    return [k for k in scenario.judges if k in model.expect]


def applicable(model: Model, scenarios: list[Scenario]) -> list[Scenario]:
    return [s for s in scenarios if judged_keys(model, s)]


def skipped(model: Model, scenarios: list[Scenario]) -> list[dict[str, str]]:
    """Each check a target does not declare, and so is not run: one record each."""
    out = []
    for s in scenarios:
        for key in s.judges:
            if key not in model.expect:
                name = s.name if key == s.expect else f"{s.name}:{key}"
                out.append({"model": model.name, "check": name, "expect": key,
                            "why": f"{model.name} ({model.kind}) does not declare '{key}'"})
    return out


def chosen(names: list[str] | None, root: Path | None = None) -> list[Scenario]:
    """The scenarios named (names or files), or every default one."""
    if not names:
        return [s for s in all_scenarios(root).values() if s.default]
    return [get(n) for n in names]
