"""Run directories: everything one lab command captured, kept together.

    runs/<when>-<verb>-<what>-<short id>/
        run.json        what ran: command, parameters, environment, git commit,
                        status (running, kept, complete, failed, interrupted,
                        incomplete, removed)
        logs/<container>.log   each container's output, capped
        results.json    machine-readable results (written whole or not at all)
        report.md ...   the human report, rendered from the files above
        traceback.txt   only after an internal error (exit 70)

Every file is written to a temporary name and renamed into place, so a crash
or a full disk never leaves a half-written result that looks like a real one.
If writing fails, the run is marked incomplete (status in run.json, or an
INCOMPLETE file, or at worst a renamed folder) and the lab says so.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any, Iterable

from .. import config
from ..errors import EnvironmentProblem, UsageError

LOG_CAP = 50 << 20  # bytes kept per container log; the rest is cut, and says so


def write_atomic(target: Path, data: bytes) -> None:
    """Write a file whole or not at all: a temporary name, fsync, rename.
    Raises OSError (the temporary file is removed first)."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def match(wanted: str, ids: Iterable[str]) -> list[str]:
    """The run ids that ``wanted`` names: itself, or those it is a prefix of."""
    ids = list(ids)
    return [wanted] if wanted in ids else [i for i in ids if i.startswith(wanted)]


def new_id(verb: str, what: str) -> tuple[str, str]:
    """(run id, short name): the id names the directory, the short name the containers."""
    short = secrets.token_hex(3)
    when = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in what)[:40]
    return f"{when}-{verb}-{safe}-{short}", short


def finite_only(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_only(v) for v in value]
    return value


class RunDir:
    def __init__(self, run_id: str, meta: dict[str, Any]) -> None:
        self.id = run_id
        self.path = config.runs_dir() / run_id
        self.meta = {"id": run_id, "status": "running", "started": time.time(), **meta}
        try:
            (self.path / "logs").mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot create run directory {self.path}: {exc.strerror}") from None
        self.write_json("run.json", self.meta)

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write a file whole or not at all; on a full disk mark the run incomplete."""
        target = self.path / name
        try:
            write_atomic(target, data)
            return target
        except OSError as exc:
            self.mark_incomplete(f"writing {name}: {exc.strerror}")
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise EnvironmentProblem(f"disk full while writing {target}: the run is marked "
                                         f"incomplete; free some space and run it again") from None
            raise EnvironmentProblem(f"cannot write {target}: {exc.strerror}") from None

    def write_json(self, name: str, value: Any) -> Path:
        """A document as standard JSON: a figure that is not a finite number is
        written as null (not measured), never as NaN, which `lab report` refuses."""
        return self.write_bytes(name, json.dumps(finite_only(value), indent=2, sort_keys=True, default=str,
                                                 allow_nan=False).encode())

    def write_log(self, name: str, data: bytes) -> Path:
        if len(data) > LOG_CAP:
            data = data[:LOG_CAP] + b"\n[log cut at %d bytes of %d]\n" % (LOG_CAP, len(data))
        return self.write_bytes(f"logs/{name}.log", data)

    def finish(self, status: str, **extra: Any) -> None:
        if self.meta.get("status") == "incomplete":
            return
        self.meta.update(status=status, ended=time.time(), **extra)
        self.write_json("run.json", self.meta)

    def mark_incomplete(self, why: str) -> None:
        """Say the run is not a result, by the cheapest means that still works."""
        self.meta.update(status="incomplete", why=why)
        try:
            (self.path / "INCOMPLETE").write_text(why + "\n")
            return
        except OSError:
            pass
        try:  # no space even for a small file: a rename needs none
            os.replace(self.path, self.path.with_name(self.path.name + ".incomplete"))
            self.path = self.path.with_name(self.path.name + ".incomplete")
        except OSError:
            pass


def find(run: str) -> Path | None:
    """The directory of a run, by id (or a unique prefix of one)."""
    root = config.runs_dir()
    ids = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    hits = match(run, ids)
    return root / hits[0] if len(hits) == 1 else None


def locate(text: str) -> Path:
    """A run directory given by path, or by run id (or a unique prefix of one)
    under the runs folder; a UsageError if there is none."""
    path = Path(text)
    if path.is_dir():
        return path
    found = find(text) if "/" not in text and text not in (".", "..") else None
    if found is None:
        raise UsageError(f"no run directory '{text}' (and no single run id under {config.runs_dir()} "
                         "starts with it)")
    return found


def save_traceback(text: str, run_dir: Path | None) -> Path | None:
    """Keep an internal error's traceback: in the run's directory when one
    was made, else in <runs>/errors/.  None if it cannot be written."""
    folder = run_dir if run_dir is not None and run_dir.is_dir() else config.runs_dir() / "errors"
    target = folder / ("traceback.txt" if run_dir is not None and run_dir.is_dir()
                       else f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt")
    try:
        write_atomic(target, text.encode())
        return target
    except OSError:
        return None


def is_complete(path: Path) -> bool:
    try:
        meta = json.loads((path / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("status") == "complete" and not (path / "INCOMPLETE").exists()
