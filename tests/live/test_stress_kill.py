"""The stress script: the lab killed at 20 random points leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_twenty_random_kills_leave_zero_resources(engine, app_image) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tests/stress_kill.py"), "--rounds", "20"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "left behind: []" in done.stdout
    assert engine.runs() == {}
