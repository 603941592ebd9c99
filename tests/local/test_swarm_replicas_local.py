"""One swarm as replicas (services/swarm/swarm.py --replica I/N), merged by
the lab (lab/measure/merge.py), against a local epoll server (no Docker).

The replicas must run disjoint clients whose union is the whole swarm, each
with its own share in its results, and the merged document must count what
one swarm would: every client once, histograms added bucket by bucket,
counts summed.  The results also travel in the output (--results-stdout),
as they do from Swarm-mode replicas on other machines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab.engine import Clock, Output
from lab.engine.base import results_in
from lab.measure import merge

from .model_process import SERVICES, ModelProcess

SWARM = SERVICES / "swarm" / "swarm.py"


@pytest.fixture
def epoll():
    proc = ModelProcess("epoll", "--backlog", "256")
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def replicas(tmp_path: Path, n: int, *args: str) -> list[tuple[dict, bytes]]:
    """Run n replicas at once; (results.json, stdout) of each."""
    env = dict(os.environ, PYTHONPATH=str(SERVICES))
    env.pop("LAB_TRACE", None)
    procs = []
    try:
        for i in range(1, n + 1):
            procs.append(subprocess.Popen(
                [sys.executable, str(SWARM), f"--out={tmp_path / str(i)}", "--results-stdout", *args],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                env={**env, "IOLAB_REPLICA": f"{i}/{n}"}))
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    got = []
    for i, (p, (out, err)) in enumerate(zip(procs, outs), 1):
        assert p.returncode == 0, f"replica {i}/{n} exited {p.returncode}: {err[-800:]!r}"
        got.append((json.loads((tmp_path / str(i) / "results.json").read_text()), out))
    return got


def test_replicas_run_disjoint_clients_and_merge_into_one_swarm(epoll, tmp_path: Path) -> None:
    runs = replicas(tmp_path, 3, f"--target=127.0.0.1:{epoll.port}", "--clients=10", "--active=7",
                    "--pattern=pingpong", "--duration=1", "--workers=2", "--trace=conn")
    clients = [{c["client"] for c in doc["connections"]} for doc, _ in runs]
    assert clients == [{1, 4, 7, 10}, {2, 5, 8}, {3, 6, 9}]
    for i, (doc, out) in enumerate(runs, 1):
        assert doc["config"]["replica"] == {"index": i, "of": 3, "clients": 10, "active": 7}
        assert doc["summary"]["clients"] == len(clients[i - 1])
        assert doc["summary"]["active"] == sum(1 for c in clients[i - 1] if c <= 7)
        assert json.loads(results_in(out)) == doc  # the output carries the same document
    merged = merge.replicas([Output(out_doc, Clock(), replica=f"{i}/3")
                             for i, (_, out_doc) in enumerate(((d, results_in(o)) for d, o in runs), 1)], 3)
    docs = [doc for doc, _ in runs]
    s = merged["summary"]
    assert merged["ok"] and merged["exit_code"] == 0
    assert (s["clients"], s["active"], s["hold"]) == (10, 7, 3)
    assert sorted(c["client"] for c in merged["connections"]) == list(range(1, 11))
    assert s["connections"]["connected"] == 10 and s["connections"]["connect_all_s"] is not None
    assert s["replies"] == sum(d["summary"]["replies"] for d in docs) > 0
    assert s["latency"]["count"] == sum(d["summary"]["latency"]["count"] for d in docs) == s["replies_measured"]
    assert s["latency"]["max_us"] == max(d["summary"]["latency"]["max_us"] for d in docs)
    assert merged["cpu"]["workers_s"] == pytest.approx(sum(d["cpu"]["workers_s"] for d in docs), abs=0.01)
    assert [r["replica"] for r in merged["replicas"]] == ["1/3", "2/3", "3/3"]
    assert merged["clock"]["bound_s"] == 0.0


def test_a_replica_split_that_leaves_one_without_clients_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SWARM), "--target=127.0.0.1:9", "--clients=2", "--replica=1/3"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(SERVICES)),
                          timeout=30)
    assert done.returncode == 2 and "3 replicas for 2 clients" in done.stderr, done.stderr
