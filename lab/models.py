"""The server models: one folder each under services/, described by model.yaml.

A model is a folder with a server.py, a model.yaml that declares what the
model is expected to do, and a service of the same name in compose.yaml.
The checks read these declarations; nothing about a model's behaviour is
written in the check code.

model.yaml, as data (every key under expect is required):
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config
from .errors import UsageError
from .yamlfile import LineDict, load, where

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
}
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


def _allowed(value: Any, choices: tuple[Any, ...]) -> bool:
    return any(value is c or (isinstance(c, type) and isinstance(value, c)) or
               (value == c and type(value) is type(c)) for c in choices)


def load_model(file: Path) -> Model:
    doc = load(file)
    if not isinstance(doc, LineDict):
        raise UsageError(f"{file}: a model.yaml is a mapping (name, summary, description, expect)")
    for key in ("name", "summary", "description", "expect"):
        if key not in doc:
            raise UsageError(f"{where(file, doc)}: model.yaml needs '{key}'")
    if doc["name"] != file.parent.name:
        raise UsageError(f"{where(file, doc, 'name')}: name '{doc['name']}' must match its folder "
                         f"'{file.parent.name}'")
    expect = doc["expect"]
    if not isinstance(expect, LineDict):
        raise UsageError(f"{where(file, doc, 'expect')}: 'expect' must be a mapping")
    for key, choices in EXPECT.items():
        if key not in expect:
            raise UsageError(f"{where(file, expect)}: expect needs '{key}' ({' | '.join(map(str, choices))})")
    for key, value in expect.items():
        choices = EXPECT.get(key) or OPTIONAL_EXPECT.get(key)
        if choices is None:
            raise UsageError(f"{where(file, expect, key)}: expect.{key} is not a known expectation "
                             f"(known: {', '.join([*EXPECT, *OPTIONAL_EXPECT])})")
        if not _allowed(value, choices):
            raise UsageError(f"{where(file, expect, key)}: expect.{key} is {value!r}; "
                             f"allowed: {' | '.join(map(str, choices))}")
    workers = doc.get("workers")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise UsageError(f"{where(file, doc, 'workers')}: workers must be a whole number >= 1")
    return Model(doc["name"], str(doc["summary"]), " ".join(str(doc["description"]).split()),
                 dict(expect), workers, dict(doc), file)


def all_models(services: Path | None = None) -> dict[str, Model]:
    """Every model folder (one with a model.yaml), by name, sorted."""
    root = services or config.SERVICES
    return {f.parent.name: load_model(f) for f in sorted(root.glob("*/model.yaml"))}


def get(name: str, services: Path | None = None) -> Model:
    models = all_models(services)
    if name not in models:
        raise UsageError(f"unknown model '{name}'; the models are: {', '.join(models)}")
    return models[name]
