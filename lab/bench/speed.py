"""The lab's own speed and scale: `lab up` timed, the swarm's throughput and its 10,000 connections."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
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
