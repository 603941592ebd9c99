"""Run directories: written whole or not at all, and a full disk is said plainly."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from lab.run import rundir as runs

from ..conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]


def test_files_are_written_whole_and_run_json_records_the_end(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    run = runs.RunDir("r1", {"verb": "test"})
    run.write_json("results.json", {"a": 1})
    run.write_log("server", b"x" * 10)
    run.finish("complete")
    assert json.loads((tmp_path / "r1/results.json").read_text()) == {"a": 1}
    assert json.loads((tmp_path / "r1/run.json").read_text())["status"] == "complete"
    assert runs.is_complete(tmp_path / "r1")
    assert not list(tmp_path.rglob(".*.tmp"))


def test_logs_are_capped(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(runs, "LOG_CAP", 100)
    run = runs.RunDir("r2", {})
    path = run.write_log("server", b"y" * 1000)
    assert path.stat().st_size < 200 and path.read_bytes().endswith(b"[log cut at 100 bytes of 1000]\n")


# Runs inside a 64 KiB tmpfs: writes a result too big for it, reports what is left.
FILL = """
import json
from lab.run import rundir as runs
from lab.errors import EnvironmentProblem
run = runs.RunDir("r3", {"verb": "test"})
try:
    run.write_json("results.json", {"big": "z" * 200_000})
    said = None
except EnvironmentProblem as exc:
    said = str(exc)
print(json.dumps({"said": said, "result_left": (run.path / "results.json").exists(),
                  "complete": runs.is_complete(run.path),
                  "marked": (run.path / "INCOMPLETE").exists() or run.path.name.endswith(".incomplete")}))
"""
MOUNT = 'mount -t tmpfs -o size=64k tmpfs "$1" || exit 97; shift; exec "$@"'


def mount_namespace(disk: Path) -> list[str]:
    """A command prefix that runs in a mount namespace of its own with a tiny
    tmpfs on ``disk``: root needs only the namespace, anyone else also a user
    namespace in which it is root.  The mount vanishes with the process."""
    unshare = shutil.which("unshare")
    if unshare is None:
        unavailable("a real full disk needs unshare (util-linux) to mount a tmpfs of its own")
    tried = []
    for ns in ([[unshare, "--mount"]] if os.geteuid() == 0 else []) + \
              [[unshare, "--user", "--map-root-user", "--mount"]]:
        probe = subprocess.run([*ns, "sh", "-c", MOUNT, "sh", str(disk), "true"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [*ns, "sh", "-c", MOUNT, "sh", str(disk)]
        tried.append(f"{' '.join(ns[1:])}: {probe.stderr.strip() or probe.returncode}")
    unavailable("cannot mount a tmpfs in a namespace here (" + "; ".join(tried) + ")")


def test_a_full_disk_marks_the_run_incomplete(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run([*mount_namespace(disk), sys.executable, "-c", FILL], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "LAB_RUNS_DIR": str(disk)})
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    assert re.fullmatch(r"disk full while writing .*results\.json: the run is marked incomplete; "
                        r"free some space and run it again", seen["said"] or ""), seen
    assert not seen["result_left"], "a half-written result was left"
    assert not seen["complete"] and seen["marked"], seen
