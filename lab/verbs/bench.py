"""lab bench [up|swarm|all]: the lab's own speed and scale, written to a run directory.

  up      time from `lab up` to a healthy server with images already built,
          repeated (the goal: 3 s or less on a 2-core machine)
  swarm   the swarm's throughput against the epoll server (100 connections,
          64-byte lines, pipelined) with its own CPU, and 10,000 concurrent
          connections from one swarm container against epoll and asyncio

Figures are measurements, not pass/fail: they land in bench.json in the run
directory, with the environment they were taken in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from .. import models
from ..console import out, say
from ..context import engine
from ..live import LiveRun
from ..probe import Bench
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure the lab itself: start-up time, swarm throughput and scale",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", choices=("up", "swarm", "all"), default="all")
    p.add_argument("--repeat", type=_args.number(int, 1, 50), default=5, help="start-ups to time (default 5)")
    p.add_argument("--duration", type=_args.duration, default=8, help="seconds of each throughput run (default 8)")
    p.add_argument("--pipeline", type=_args.number(int, 1, 4096), default=16,
                   help="requests in flight per connection in the throughput run (default 16)")
    p.add_argument("--connections", type=_args.number(int, 1, 19_000), default=10_000,
                   help="concurrent connections in the scale run (default 10000)")
    p.set_defaults(func=run)


def bench_up(repeat: int) -> dict[str, Any]:
    """`lab up MODEL --no-swarm` as a user runs it, timed from the command to
    its report of a healthy server (images built beforehand)."""
    times = []
    lab = [sys.executable, "-m", "lab"]
    for i in range(repeat + 1):  # the first builds images if needed: not counted
        began = time.monotonic()
        done = subprocess.run([*lab, "up", "threads", "--no-swarm"],
                              capture_output=True, text=True, env=dict(os.environ))
        took = time.monotonic() - began
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        run_id = done.stdout.split("(run ", 1)[1].split(",", 1)[0]
        subprocess.run([*lab, "down", run_id], capture_output=True, env=dict(os.environ))
        if i:
            times.append(round(took, 3))
        say(f"bench up: {'warm-up' if not i else f'run {i}'} {took:.2f}s")
    return {"command": "lab up threads --no-swarm", "seconds": times,
            "median_s": statistics.median(times), "max_s": max(times), "goal_s": 3.0}


def bench_swarm(live: LiveRun, bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    epoll = bench.serve(models.get("epoll"), trace="off", args=["--backlog=4096"])
    probe = bench.swarm(epoll, "throughput", [
        "--clients=100", "--pattern=pingpong", f"--pipeline={args.pipeline}", "--size=64",
        "--warmup=1", f"--duration={args.duration}", "--trace=off"])
    s = probe.summary
    figures["throughput"] = {
        "server": "epoll (--trace off)", "connections": 100, "size": 64, "pipeline": args.pipeline,
        "replies_per_s": round(s.get("replies_per_s", 0)), "latency": s.get("latency"),
        "swarm_cpu_cores": probe.results.get("cpu", {}).get("per_s"), "goal_replies_per_s": 120_000}
    say(f"bench swarm: {figures['throughput']['replies_per_s']:,} replies/s, swarm CPU "
        f"{figures['throughput']['swarm_cpu_cores']} cores")
    bench.remove(epoll)
    for name in ("epoll", "asyncio"):
        target = bench.serve(models.get(name), trace="off", args=["--backlog=4096"])
        probe = bench.swarm(target, f"hold-{args.connections}", [
            f"--clients={args.connections}", "--pattern=hold", "--duration=6", "--trace=off"])
        s = probe.summary
        conns = s.get("connections", {})
        figures[f"hold_{name}"] = {
            "server": name, "asked": args.connections, "connected": conns.get("connected"),
            "connect_all_s": conns.get("connect_all_s"), "errors": s.get("errors"),
            "limits": probe.results.get("limits"), "warnings": probe.results.get("warnings")}
        say(f"bench swarm: {conns.get('connected')} of {args.connections} connections held against {name}"
            f" (all in {conns.get('connect_all_s')} s)")
        bench.remove(target)
    return figures


def run(args: argparse.Namespace) -> int:
    eng = engine()
    results: dict[str, Any] = {"schema": "iolab.bench/1"}
    with LiveRun(eng, "bench", args.what, say=say, params=vars(args) | {"func": None}) as live:
        live.ensure_image()
        if args.what in ("up", "all"):
            results["up"] = bench_up(args.repeat)
        if args.what in ("swarm", "all"):
            results["swarm"] = bench_swarm(live, Bench(live), args)
        results["engine"] = {k: eng.client.version().get(k) for k in ("Version", "ApiVersion", "KernelVersion")}
        live.dir.write_json("bench.json", results)
    for key, value in results.items():
        out.print(f"[bold]{key}[/]: {value}")
    out.print(f"written to {live.dir.path}/bench.json")
    return 0
