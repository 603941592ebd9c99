"""C10K through `lab check`: ten thousand connections against two models
that answer them in opposite ways (epoll holds them all, select fails at
descriptor 1024 and says so), with the figures in the run directory.
Both are also told they keep two threads at the peak (`--expect
thread_count=2`), which is wrong of both: that companion check turns red.

Both are told they hold them all (`--expect c10k=holds`): true of epoll,
whose check must hold (its busy clients' p99 within the tolerance, judged
only if the host had cores to spare), and wrong of select, whose check must
turn red: the failing direction of the c10k judge, in the same run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.live.judged import check, expect_ok


def test_c10k_is_judged_and_its_figures_recorded(engine, app_image) -> None:
    report = check("epoll", "select", "--scenario", "c10k", "--expect", "c10k=holds", "--expect", "thread_count=2",
                   codes=(1,), timeout=600)
    assert report["expect_overrides"] == {"c10k": "holds", "thread_count": 2}
    verdicts = {v["model"]: v for v in report["checks"] if v["expect"] == "c10k"}
    flipped = [v for v in report["checks"] if v["expect"] == "thread_count"]
    assert sorted(v["model"] for v in flipped) == ["epoll", "select"]
    for v in flipped:  # one thread each at the peak, not two
        expect_ok(v, False)
        assert v["figures"]["max_threads"] == 1 and v["figures"]["open_at_peak"] > 0, v
    epoll, select = verdicts["epoll"]["figures"], verdicts["select"]["figures"]
    assert epoll["accepted"] == epoll["kept_to_the_end"] == 10_000
    assert epoll["memory_per_connection"]["pss"] > 0 and epoll["threads_at_peak"] == 1
    assert epoll["latency_us"]["count"] > 0 and epoll["free_cores"] is not None
    assert select["server_errors"].get("fd_setsize", 0) > 0 and select["kept_to_the_end"] < 10_000
    for figures in (epoll, select):
        assert figures["somaxconn"] and figures["backlog"] == 4096 and figures["nofile"] == 20_000
        assert figures["port_range"] == [1024, 65535]
    saved = Path(os.environ["LAB_RUNS_DIR"]) / report["run"] / "checks.json"
    assert json.loads(saved.read_text())["checks"] == report["checks"]
    expect_ok(verdicts["select"], False)  # it cannot hold them: descriptor 1024 is its limit
    expect_ok(verdicts["epoll"], True)  # last: on a busy host this one proves nothing
