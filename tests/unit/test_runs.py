"""Run directories: written whole or not at all, and a full disk is said plainly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lab import runs
from lab.errors import EnvironmentProblem


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


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 64 KiB tmpfs: a real full disk (needs root, as CI has)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_marks_the_run_incomplete(tiny_disk: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAB_RUNS_DIR", str(tiny_disk))
    run = runs.RunDir("r3", {"verb": "test"})
    with pytest.raises(EnvironmentProblem, match=r"disk full while writing .*results.json: the run is marked incomplete"):
        run.write_json("results.json", {"big": "z" * 200_000})
    assert not (run.path / "results.json").exists(), "a half-written result was left"
    assert not runs.is_complete(run.path)
    assert (run.path / "INCOMPLETE").exists() or run.path.name.endswith(".incomplete")
