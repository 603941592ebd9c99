"""C10K through `lab check`, the failing direction: select is told it holds
ten thousand connections (`--expect c10k=holds`) and keeps two threads at
the peak (`--expect thread_count=2`).  Both are wrong: it fails at
descriptor 1024 and says so, with one thread throughout, and both checks
turn red, with the figures in the run directory.  Holding them (epoll, and
the cooperative models) is proven in test_compare_live.py and
test_c10k_coop_live.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.live.judged import check, expect_ok


def test_c10k_is_judged_and_its_figures_recorded(engine, app_image) -> None:
    report = check("select", "--scenario", "c10k", "--expect", "c10k=holds", "--expect", "thread_count=2",
                   codes=(1,), timeout=600)
    assert report["expect_overrides"] == {"c10k": "holds", "thread_count": 2}
    (verdict,) = [v for v in report["checks"] if v["expect"] == "c10k"]
    (flipped,) = [v for v in report["checks"] if v["expect"] == "thread_count"]
    expect_ok(flipped, False)  # one thread at the peak, not two
    assert flipped["figures"]["max_threads"] == 1 and flipped["figures"]["open_at_peak"] > 0, flipped
    figures = verdict["figures"]
    assert figures["server_errors"].get("fd_setsize", 0) > 0 and figures["kept_to_the_end"] < 10_000
    assert figures["somaxconn"] and figures["backlog"] == 4096 and figures["nofile"] == 20_000
    assert figures["port_range"] == [1024, 65535]
    saved = Path(os.environ["LAB_RUNS_DIR"]) / report["run"] / "checks.json"
    assert json.loads(saved.read_text())["checks"] == report["checks"]
    expect_ok(verdict, False)  # it cannot hold them: descriptor 1024 is its limit
