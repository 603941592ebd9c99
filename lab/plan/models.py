"""The server models: one folder each under services/, described by model.yaml.

A model is a folder with a server.py, a model.yaml that declares what the
model is expected to do, and a service of the same name in compose.yaml.
The checks read these declarations; nothing about a model's behaviour is
written in the check code.

Other targets are declared the same way (services/<name>/model.yaml), with
a `kind:`

    kind: model        a Python model (the default): every key under expect
                       below is required
    kind: reference    a native calibration server (services/native): it
                       declares only what it supports
    kind: server       a real server (redis, postgres, ...): likewise

For references and servers every expect key is optional; `lab check` skips,
and says so, each check whose key a target does not declare.  Optional
top-level keys for targets that are not line-protocol servers on 12345:
`protocol:` (line | http | redis | memcached | postgres; default line) and
`port:` (default 12345).  And, for any target:

    slow: {request: TEXT, ms: N}   one request that makes the server do one slow
                                   thing for N ms, in the protocol's text form (what
                                   the swarm sends): judged by slow_stalls_others
    closes_idle: true              the server closes idle keep-alive connections on
                                   its own (Apache event, when a process is busy):
                                   a close between requests is no failure
    class: NAME                    the concurrency model, in `lab classify`'s words
                                   (CLASSES below); without it, derived from expect
    workers_step: N                `--workers` must be a multiple of N (Apache's
                                   threaded MPMs: 2 processes share the pool)

model.yaml, as data (for kind: model every key under expect is required):
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ioschema import DEFAULT_PORT, PROTOCOLS

from .. import config
from ..errors import UsageError
from ..yamlfile import LineDict, load, where

# key -> allowed values (a type means "any value of that type")
EXPECT: dict[str, tuple[Any, ...]] = {
    "peak_served": (1, "all", "workers"),  # clients served at once
    "threads": ("fixed", "per-client"),  # threads in the server as clients connect
    "processes": ("fixed", "per-client"),  # processes in the server as clients connect
    "idle_cpu": ("idle", "busy"),  # CPU with no client at all
    "crash_takes": ("connection", "all"),  # what a CRASH in one handler takes down
    "raise_takes": ("connection", "all"),  # what a Python exception takes down
    "block_stalls_others": (True, False),  # BLOCK in one handler delays other clients
    "sleep_stalls_others": (True, False),  # SLEEP in one handler delays other clients
    "work_stalls_others": (True, False),  # CPU-bound WORK in one handler delays other clients
    "cpu_parallel": (True, False),  # CPU-bound WORK from two clients uses two cores
    "lost_updates": (True, False, "per-process"),  # unlocked INCR from many clients
}
# Optional: the check that reads one of these applies only where it is declared.
OPTIONAL_EXPECT: dict[str, tuple[Any, ...]] = {
    "thread_count": (int,),  # threads in each server process, whatever the clients
    "wouldblock_counter": (True,),  # STATS counts recv/accept returning EAGAIN
    "triggering": ("level", "edge"),  # how readiness is reported
    "fd_limit": (None, int),  # highest descriptor the readiness API can watch
    "c10k": ("holds", "threads", "fd-limit", "backlog", "pids-limit"),  # with 10,000 connections
    "slow_stalls_others": (True, False),  # the target's own slow request (slow:) delays other clients
    "slow_clients": ("held", "not-held"),  # clients sending requests in pieces hold the workers, or not
    # What a reply costs (scenarios/syscalls.yaml, docs/cost.md): EAGAIN returns per reply (many:
    # busy polling, more with idle connections), whether each readiness wait's reads end in
    # EAGAIN (an edge-triggered loop drains), what a readiness wait pays for (every open
    # descriptor, or the ready ones), voluntary context switches per reply (per-reply: a task
    # wakes for each), io_uring_enter calls per reply (fewer than one: batched)
    "eagain_per_reply": ("many", "few"),
    "drains_to_eagain": (True, False),
    "scan_cost": ("per-descriptor", "per-ready"),
    "switches_per_reply": ("per-reply", "fewer"),
    "uring_enter_per_reply": ("fewer-than-one",),
}
KINDS = ("model", "reference", "server")
# What `lab classify` can infer (lab/observe/classify.py), and a model.yaml's `class:` may declare.
CLASSES = ("one-at-a-time", "process-per-connection", "thread-per-connection", "process-pool", "thread-pool",
           "event-loop", "event-loop-workers")
__doc__ += "\n".join(f"    {k}: {' | '.join(map(str, v))}" for k, v in EXPECT.items())
__doc__ += "\n\nand, optionally (a check applies only to models that declare its key):\n"
__doc__ += "\n".join(f"    {k}: {' | '.join(map(str, v))}" for k, v in OPTIONAL_EXPECT.items())


@dataclass(frozen=True)
class Model:
    name: str
    summary: str
    description: str
    expect: dict[str, Any]
    workers: int | None
    spec: dict[str, Any]  # the whole model.yaml, for checks that read more of it
    file: Path
    kind: str = "model"  # model | reference | server
    protocol: str = "line"
    port: int = DEFAULT_PORT
    workers_step: int = 1  # --workers must be a multiple of it (Apache's threaded MPMs: 2 processes share the pool)

    def with_expect(self, overrides: dict[str, Any]) -> "Model":
        """The same model with some declarations replaced (`lab check --expect`)."""
        return replace(self, expect={**self.expect, **overrides})


# The numbers a declaration may hold: (least, most).  A thread count is of
# one process (a container holds at most 10,500 tasks); a descriptor limit
# is below Linux's most (fs.nr_open, 2**20).
EXPECT_RANGES: dict[str, tuple[int, int]] = {"thread_count": (1, 10_500), "fd_limit": (1, 2**20)}
WORKERS_MAX = 1024  # a pool's processes or threads
SLOW_MS_MAX = 60_000  # a slow request longer than a minute outlasts any probe


def _allowed(value: Any, choices: tuple[Any, ...]) -> bool:
    """Is ``value`` one of ``choices`` (a type: any value of it; a bool is no int)?"""
    return any(value is c or (isinstance(c, type) and isinstance(value, c) and not
                              (isinstance(value, bool) and c is not bool)) or
               (value == c and type(value) is type(c)) for c in choices)


def check_expect(key: str, value: Any, where_: str) -> None:
    """One expect key and its value, as model.yaml allows them; else a
    UsageError that starts with ``where_``."""
    choices = EXPECT.get(key) or OPTIONAL_EXPECT.get(key)
    if choices is None:
        raise UsageError(f"{where_}: expect.{key} is not a known expectation "
                         f"(known: {', '.join([*EXPECT, *OPTIONAL_EXPECT])})")
    if not _allowed(value, choices):
        raise UsageError(f"{where_}: expect.{key} is {value!r}; allowed: {' | '.join(map(str, choices))}")
    least, most = EXPECT_RANGES.get(key, (None, None))
    if isinstance(value, int) and not isinstance(value, bool) and least is not None and not least <= value <= most:
        raise UsageError(f"{where_}: expect.{key} is {value}; it must be from {least} to {most:,}")


def load_model(file: Path) -> Model:
    """A model.yaml, checked: every error names the file and the line."""
    doc = load(file)
    if not isinstance(doc, LineDict):
        raise UsageError(f"{file}: a model.yaml is a mapping (name, summary, description, expect)")
    for key in ("name", "summary", "description", "expect"):
        if key not in doc:
            raise UsageError(f"{where(file, doc)}: model.yaml needs '{key}'")
    if doc["name"] != file.parent.name:
        raise UsageError(f"{where(file, doc, 'name')}: name '{doc['name']}' must match its folder "
                         f"'{file.parent.name}'")
    kind = doc.get("kind", "model")
    if kind not in KINDS:
        raise UsageError(f"{where(file, doc, 'kind')}: kind is {kind!r}; allowed: {' | '.join(KINDS)}")
    protocol = doc.get("protocol", "line")
    if protocol not in PROTOCOLS:
        raise UsageError(f"{where(file, doc, 'protocol')}: protocol is {protocol!r}; "
                         f"allowed: {' | '.join(PROTOCOLS)}")
    port = doc.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise UsageError(f"{where(file, doc, 'port')}: port must be a whole number from 1 to 65535")
    expect = _expect(file, doc, kind)
    workers = doc.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                or not 1 <= workers <= WORKERS_MAX):
        raise UsageError(f"{where(file, doc, 'workers')}: workers must be a whole number from 1 to {WORKERS_MAX}")
    step = doc.get("workers_step", 1)
    if "workers_step" in doc and (not isinstance(step, int) or isinstance(step, bool) or step < 1
                                  or workers is None or workers % step):
        raise UsageError(f"{where(file, doc, 'workers_step')}: workers_step is a whole number >= 1 that "
                         f"divides workers")
    _check_extras(file, doc, expect)
    return Model(doc["name"], str(doc["summary"]), " ".join(str(doc["description"]).split()),
                 dict(expect), workers, dict(doc), file, kind, protocol, port, step)


def _expect(file: Path, doc: LineDict, kind: str) -> LineDict:
    """The expect mapping, every key and value checked; a Python model must declare every EXPECT key."""
    expect = doc["expect"]
    if expect is None and kind != "model":  # a target that declares nothing yet
        expect = LineDict()
        expect.lines = {}
    if not isinstance(expect, LineDict):
        raise UsageError(f"{where(file, doc, 'expect')}: 'expect' must be a mapping")
    for key, choices in EXPECT.items() if kind == "model" else ():
        if key not in expect:
            raise UsageError(f"{where(file, expect)}: expect needs '{key}' ({' | '.join(map(str, choices))})")
    for key, value in expect.items():
        check_expect(key, value, where(file, expect, key))
    return expect


def _check_extras(file: Path, doc: LineDict, expect: LineDict) -> None:
    """slow:, closes_idle: and class:, and the key that needs slow:."""
    slow = doc.get("slow")
    if slow is not None:
        if not isinstance(slow, dict) or set(slow) != {"request", "ms"} or not isinstance(slow["request"], str) \
                or not slow["request"].strip() or "\n" in slow["request"] or not isinstance(slow["ms"], int) \
                or isinstance(slow["ms"], bool) or not 1 <= slow["ms"] <= SLOW_MS_MAX:
            raise UsageError(f"{where(file, doc, 'slow')}: slow is {{request: one line of text, ms: a whole "
                             f"number from 1 to {SLOW_MS_MAX}}}")
    if "slow_stalls_others" in expect and slow is None:
        raise UsageError(f"{where(file, expect, 'slow_stalls_others')}: slow_stalls_others needs a top-level "
                         f"slow: {{request, ms}} (the request that is slow)")
    if not isinstance(doc.get("closes_idle", False), bool):
        raise UsageError(f"{where(file, doc, 'closes_idle')}: closes_idle is true or false")
    if "class" in doc and doc["class"] not in CLASSES:
        raise UsageError(f"{where(file, doc, 'class')}: class is {doc['class']!r}; allowed: {' | '.join(CLASSES)}")
    _check_tolerances(file, doc)


def _check_tolerances(file: Path, doc: LineDict) -> None:
    """`tolerances:` overrides services/tolerances.yaml: known names, each a finite number >= 0."""
    given = doc.get("tolerances")
    if given is None:
        return
    if not isinstance(given, LineDict):
        raise UsageError(f"{where(file, doc, 'tolerances')}: tolerances maps names of services/tolerances.yaml "
                         "to numbers")
    known = yaml.safe_load((config.SERVICES / "tolerances.yaml").read_text()) or {}
    for key, value in given.items():
        if key not in known:
            raise UsageError(f"{where(file, given, key)}: unknown tolerance '{key}' (known: {', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
            raise UsageError(f"{where(file, given, key)}: tolerance {key} must be a finite number >= 0, "
                             f"got {value!r}")


def all_models(services: Path | None = None) -> dict[str, Model]:
    """Every model folder (one with a model.yaml), by name, sorted."""
    root = services or config.SERVICES
    return {f.parent.name: load_model(f) for f in sorted(root.glob("*/model.yaml"))}


def get(name: str, services: Path | None = None) -> Model:
    models = all_models(services)
    if name not in models:
        raise UsageError(f"unknown model '{name}'; the models are: {', '.join(models)}")
    return models[name]


def parse_expect(texts: list[str]) -> dict[str, Any]:
    """`--expect KEY=VALUE` flags: VALUE is YAML, checked as model.yaml checks it."""
    found: dict[str, Any] = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--expect {text}: write KEY=VALUE, e.g. --expect peak_served=1")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UsageError(f"--expect {text}: '{raw}' is not a YAML value") from None
        check_expect(key, value, f"--expect {text}")
        found[key] = value
    return found
