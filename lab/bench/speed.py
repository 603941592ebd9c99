"""The lab's own speed and scale: `lab up` and `lab tour` timed, the swarm's throughput and its 10,000 connections."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..console import say
from ..plan import models
from ..run.live import LiveRun
from ..run.probe import Bench


def bench_up(repeat: int, orchestrator: str = "local") -> dict[str, Any]:
    """`lab up MODEL --no-swarm` as a user runs it, timed from the command to
    its report of a healthy server (images built beforehand)."""
    times = []
    lab = [sys.executable, "-m", "lab"]
    env = {**os.environ, "LAB_ORCHESTRATOR": orchestrator}
    for i in range(repeat + 1):  # the first builds images if needed: not counted
        began = time.monotonic()
        done = subprocess.run([*lab, "up", "threads", "--no-swarm"], capture_output=True, text=True, env=env)
        took = time.monotonic() - began
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        run_id = done.stdout.split("(run ", 1)[1].split(",", 1)[0]
        subprocess.run([*lab, "down", run_id], capture_output=True, env=env)
        if i:
            times.append(round(took, 3))
        say(f"bench up: {'warm-up' if not i else f'run {i}'} {took:.2f}s")
    return {"command": "lab up threads --no-swarm", "seconds": times,
            "median_s": statistics.median(times), "max_s": max(times), "goal_s": 3.0}


TOUR_GOAL_S = 360.0  # the whole tour, --no-pause, on a 2-core machine


def bench_tour(orchestrator: str = "local") -> dict[str, Any]:
    """`lab tour --no-pause` as a user runs it: its own wall time (from its
    tour.json: the steps, without writing the transcript) and the command's."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lab", "tour", "--no-pause"], capture_output=True, text=True,
                          env={**os.environ, "LAB_ORCHESTRATOR": orchestrator})
    took = time.monotonic() - began
    found = re.search(r"^\S+: (\S+)/transcript\.\w+\.html", done.stdout, re.M)
    if done.returncode not in (0, 1, 3) or not found:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1:], "exit": done.returncode}
    record = json.loads((Path(found.group(1)) / "tour.json").read_text())
    verdicts = [v for s in record["steps"] for v in s["verdicts"]]
    figures = {"command": "lab tour --no-pause", "wall_s": record["wall_s"], "command_s": round(took, 1),
               "goal_s": TOUR_GOAL_S, "steps": len(record["steps"]), "run": record["run"],
               "held": sum(1 for v in verdicts if v["ok"] is True),
               "failed": sum(1 for v in verdicts if v["ok"] is False),
               "not_judged": sum(1 for v in verdicts if v["ok"] is None)}
    say(f"bench tour: {record['wall_s']:.0f} s for {len(record['steps'])} steps (goal {TOUR_GOAL_S:.0f} s)")
    return figures


def bench_swarm(live: LiveRun, bench: Bench, duration: float | None, pipeline: int | None,
                connections: int) -> dict[str, Any]:
    """The swarm's throughput against the epoll server, with its own CPU, then
    how many connections one swarm holds against epoll and asyncio."""
    figures: dict[str, Any] = {}
    pipeline = pipeline or 16
    epoll = bench.serve(models.get("epoll"), trace="off", args=["--backlog=4096"])
    probe = bench.swarm(epoll, "throughput", [
        "--clients=100", "--pattern=pingpong", f"--pipeline={pipeline}", "--size=64",
        "--warmup=1", f"--duration={duration or 8}", "--trace=off"])
    s = probe.summary
    figures["throughput"] = {
        "server": "epoll (--trace off)", "connections": 100, "size": 64, "pipeline": pipeline,
        "replies_per_s": round(s.get("replies_per_s", 0)), "latency": s.get("latency"),
        "swarm_cpu_cores": probe.results.get("cpu", {}).get("per_s"), "goal_replies_per_s": 120_000}
    say(f"bench swarm: {figures['throughput']['replies_per_s']:,} replies/s, swarm CPU "
        f"{figures['throughput']['swarm_cpu_cores']} cores")
    bench.remove(epoll)
    for name in ("epoll", "asyncio"):
        target = bench.serve(models.get(name), trace="off", args=["--backlog=4096"])
        probe = bench.swarm(target, f"hold-{connections}", [
            f"--clients={connections}", "--pattern=hold", "--duration=6", "--trace=off"])
        s = probe.summary
        conns = s.get("connections", {})
        figures[f"hold_{name}"] = {
            "server": name, "asked": connections, "connected": conns.get("connected"),
            "connect_all_s": conns.get("connect_all_s"), "errors": s.get("errors"),
            "limits": probe.results.get("limits"), "warnings": probe.results.get("warnings")}
        say(f"bench swarm: {conns.get('connected')} of {connections} connections held against {name}"
            f" (all in {conns.get('connect_all_s')} s)")
        bench.remove(target)
    return figures
