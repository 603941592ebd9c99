"""The stress script: `lab up` killed at 20 points spread over its start-up
leaves nothing behind, and some of those kills caught it mid-start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_twenty_kills_leave_zero_resources(engine, app_image, tmp_path: Path) -> None:
    report = tmp_path / "stress.json"
    done = subprocess.run([sys.executable, str(ROOT / "tests/stress_kill.py"), "--rounds", "20",
                           "--json", str(report)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    doc = json.loads(report.read_text())
    assert len(doc["kills"]) == 20 and doc["problems"] == [] and doc["left"] == [], doc
    # mid-start: the engine showed some of the run (a network, a container)
    # at the kill, and no keep marker; the next command swept it
    mid = [k for k in doc["kills"] if k["phase"] == "mid-start"]
    assert mid, f"no kill caught `lab up` mid-start: {doc['phases']}"
    assert all(k["run"] and k["resources"] and not any("keep" in r for r in k["resources"]) for k in mid), mid
    assert any(k["swept"] for k in mid), f"`lab status` swept none of the runs killed mid-start: {mid}"
    assert engine.runs() == {}
