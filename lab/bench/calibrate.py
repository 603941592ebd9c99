"""Calibration: the swarm against the ruler (the native client and server) and CPython's floor.

The native client (iolab-pingpong), CPython's floor (iolab-pyfloor, the least
a Python client spends per reply) and the swarm, each against the native
server (iolab-echo) and against the epoll model, container to container, in
alternating rounds: rates, CPU per reply and the swarm/native ratios against
their goals, and the swarm/floor ratios that tell its own bookkeeping from
the interpreter's.  Then what message tracing costs the epoll model.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any, Callable

from ..console import say
from ..engine import NO_HEALTHCHECK, EngineError, Unit
from ..errors import EnvironmentProblem
from ..measure.cgroup import Cgroup
from ..measure.host import HostLoad, local_proc_stat
from ..plan import models
from ..run.live import LiveRun
from ..run.probe import Bench, Target

CLIENTS = ("native", "python", "swarm")  # python: iolab-pyfloor, CPython's floor
TOOLS = {"native": "iolab-pingpong", "python": "iolab-pyfloor"}  # the clients run by exec
SERVERS = ("native", "epoll")
CONNECTIONS, SIZE, WARMUP = 100, 64, 1.0
GOALS = {"vs_native": 0.8, "vs_epoll": 0.95, "swarm_cpu_us_per_reply": 10.0,
         "epoll_of_native": 0.8, "msg_over_conn": 2.0}
COMPARED_LEVELS = ("conn", "msg")  # what message tracing costs the epoll model, per reply
# Cores of other work on the host during a run past which its figures are
# doubtful.  "Other" (lab/measure/host.py) also holds the kernel's softirq time
# for the run's own traffic, which no cgroup is charged for: a few tenths.
BUSY = 0.5


def calibration_order(rounds: int) -> list[tuple[int, str, str]]:
    """(round, client, server) in the order they run: servers and clients
    swap places every other round (ABBA), so that a drift of the machine
    during the session weighs on both sides of every ratio alike."""
    order = []
    for r in range(rounds):
        flip = r % 2 == 1
        for server in reversed(SERVERS) if flip else SERVERS:
            for client in reversed(CLIENTS) if flip else CLIENTS:
                order.append((r, client, server))
    return order


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per pair: median rate and CPU per reply; per server: the swarm/native
    rate ratio of each round (both measured in the same round), and its
    median, and the same for CPython's floor over the native client and the
    swarm over that floor.  A run that failed (no rate) leaves its round's
    ratio out."""
    def cpu(client: str) -> float | None:
        return _median([r["client_cpu_us_per_reply"] for r in runs
                        if r["client"] == client and r.get("client_cpu_us_per_reply") is not None])

    busy = [r for r in runs if r.get("host_other_cores") is not None and r["host_other_cores"] > BUSY]
    return {"pairs": {f"{c}->{s}": _pair(runs, c, s) for c in CLIENTS for s in SERVERS}, "ratios": _ratios(runs),
            "swarm_cpu_us_per_reply": {"median": cpu("swarm"), "native_median": cpu("native"),
                                       "floor_median": cpu("python"), "goal": GOALS["swarm_cpu_us_per_reply"]},
            "host_busy_runs": len(busy)}


def _pair(runs: list[dict[str, Any]], client: str, server: str) -> dict[str, Any]:
    """One client against one server over the rounds: medians, and the rates' range."""
    mine = [r for r in runs if r["client"] == client and r["server"] == server]
    rates = [r["replies_per_s"] for r in mine if r.get("replies_per_s")]
    return {"client": client, "server": server, "runs": len(mine), "measured": len(rates),
            "replies_per_s": _median(rates), "min": min(rates, default=None), "max": max(rates, default=None),
            "client_cpu_us_per_reply": _median([r["client_cpu_us_per_reply"] for r in mine
                                                if r.get("client_cpu_us_per_reply") is not None]),
            "server_cpu_us_per_reply": _median([r["server_cpu_us_per_reply"] for r in mine
                                                if r.get("server_cpu_us_per_reply") is not None])}


def _ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each round's rate ratios (both rates measured in that round) and their medians."""
    def ratios(server: str, over: str = "native", client: str = "swarm") -> list[float]:
        out: list[float] = []
        for rnd in sorted({r["round"] for r in runs}):
            got = {r["client"]: r.get("replies_per_s") for r in runs if r["round"] == rnd and r["server"] == server}
            if got.get(client) and got.get(over):
                out.append(round(got[client] / got[over], 3))
        return out

    found: dict[str, Any] = {}
    for server in SERVERS:
        goal = f"vs_{server}"
        per_round = ratios(server)
        found[goal] = {"what": f"swarm / native client, replies/s against {server}",
                       "per_round": per_round, "median": _median(per_round), "goal": GOALS[goal]}
        # what any CPython client reaches here: the floor over the native client ...
        floor = ratios(server, client="python")
        found[f"floor_vs_{server}"] = {"what": f"CPython floor / native client, replies/s against {server}",
                                       "per_round": floor, "median": _median(floor)}
        # ... and how much of the rest is the swarm's own bookkeeping
        own = ratios(server, over="python")
        found[f"swarm_over_floor_{server}"] = {"what": f"swarm / CPython floor, replies/s against {server}",
                                               "per_round": own, "median": _median(own)}
    native_rates = {r["round"]: r.get("replies_per_s") for r in runs
                    if r["client"] == "native" and r["server"] == "native"}
    epoll_share = [round(r["replies_per_s"] / native_rates[r["round"]], 3) for r in runs
                   if r["client"] == "native" and r["server"] == "epoll" and r.get("replies_per_s")
                   and native_rates.get(r["round"])]
    found["epoll_of_native"] = {"what": "epoll model / native server, native client's replies/s",
                                "per_round": epoll_share, "median": _median(epoll_share),
                                "goal": GOALS["epoll_of_native"]}
    return found


def trace_cost(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The epoll model's server CPU per reply at --trace msg over --trace
    conn, each round's pair on its own, then the median."""
    per_round = []
    for rnd in sorted({r["round"] for r in runs}):
        cpu = {r["trace"]: r.get("server_cpu_us_per_reply") for r in runs if r["round"] == rnd}
        if cpu.get("msg") and cpu.get("conn"):
            per_round.append(round(cpu["msg"] / cpu["conn"], 3))
    levels = {level: _median([r["server_cpu_us_per_reply"] for r in runs if r["trace"] == level
                              and r.get("server_cpu_us_per_reply") is not None]) for level in COMPARED_LEVELS}
    return {"what": "epoll model's CPU per reply, --trace msg / --trace conn (native client)",
            "server_cpu_us_per_reply": levels, "per_round": per_round, "median": _median(per_round),
            "goal": GOALS["msg_over_conn"]}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def calibration_lines(result: dict[str, Any]) -> list[str]:
    """The ratios against their goals, in words."""
    s = result["summary"]
    lines = [_against_native(s["ratios"], server) for server in SERVERS]
    share = s["ratios"]["epoll_of_native"]
    verdict = "-" if share["median"] is None else ("meets" if share["median"] >= share["goal"] else "below")
    lines.append(f"{share['what']}: {_fmt(share['median'], 2)} (goal {share['goal']}: {verdict})")
    if cost := result.get("trace_cost"):
        verdict = "-" if cost["median"] is None else ("meets" if cost["median"] <= cost["goal"] else "above")
        levels = cost["server_cpu_us_per_reply"]
        lines.append(f"{cost['what']}: {_fmt(cost['median'], 2)} ({_fmt(levels['msg'])} against "
                     f"{_fmt(levels['conn'])} us; goal {cost['goal']:g}: {verdict})")
    cpu = s["swarm_cpu_us_per_reply"]
    verdict = "-" if cpu["median"] is None else ("meets" if cpu["median"] <= cpu["goal"] else "above")
    floor = cpu.get("floor_median")
    if verdict == "above" and floor is not None and floor > cpu["goal"]:
        verdict += "; CPython's floor is above it too, so no Python client can meet it here"
    lines.append(f"swarm CPU per reply: {_fmt(cpu['median'])} us (native client: {_fmt(cpu['native_median'])} us, "
                 f"CPython floor: {_fmt(floor)} us; goal {cpu['goal']:g}: {verdict})")
    if s["host_busy_runs"]:
        lines.append(f"warning: other work on the host took more than {BUSY} cores during "
                     f"{s['host_busy_runs']} of {len(result['runs'])} runs: ratios are doubtful")
    return lines


def _against_native(ratios: dict[str, Any], server: str) -> str:
    """The swarm over the native client against ``server``, with what CPython's floor reaches."""
    r = ratios[f"vs_{server}"]
    verdict = "-" if r["median"] is None else ("meets" if r["median"] >= r["goal"] else "below")
    floor, own = ratios[f"floor_vs_{server}"]["median"], ratios[f"swarm_over_floor_{server}"]["median"]
    if verdict == "below" and floor is not None and floor < r["goal"]:
        verdict += f"; CPython's floor reaches only {floor:.2f}, so no Python client can here"
    elif floor is not None:
        verdict += f"; CPython's floor: {floor:.2f}"
    if own is not None:
        verdict += f"; the swarm does {own:.2f} of the floor"
    return (f"{r['what']}: {_fmt(r['median'], 2)} (rounds: {', '.join(f'{x:.2f}' for x in r['per_round'])}; "
            f"goal {r['goal']}: {verdict})")


def unmeasured(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The calibration runs (bench.json) that measured no replies."""
    return [r for r in results.get("calibrate", {}).get("runs", []) if not r.get("replies_per_s")]


class Calibrator:
    """The six pairs, container to container on one run's network: the two
    servers stay up for the whole session; the swarm runs by exec in the
    run's swarm container, the native client and CPython's floor by exec in
    a container of the native image (no server in it, no network alias of a
    server)."""

    def __init__(self, live: LiveRun, bench: Bench, duration: float, pipeline: int) -> None:
        self.live, self.bench = live, bench
        self.duration, self.pipeline = duration, pipeline
        self.client = self._client_container()
        self.client_cgroup = Cgroup(self.client)
        self.saved = 0  # iolab-pingpong and iolab-pyfloor reports written to the run directory
        self.servers: dict[str, Target] = {}
        for name in SERVERS:
            self.servers[name] = bench.serve(models.get(name), trace="conn", args=["--backlog=4096"])

    def trace_level(self, rnd: int, level: str) -> dict[str, Any]:
        """The native client against a fresh epoll server at ``level``."""
        self.servers["epoll"] = self.bench.serve(models.get("epoll"), trace=level, args=["--backlog=4096"])
        figures = self.run(rnd, "native", "epoll")
        figures["trace"] = level
        return figures

    def _client_container(self) -> Unit:
        """A second unit of compose.yaml's `native` service, idle, for
        iolab-pingpong and iolab-pyfloor; named and aliased apart from the
        native server."""
        live = self.live
        name = "native-client"
        return live.start("native", command=["sleep", "infinity"], name=f"{live.prefix}-{name}", key=name,
                          role="client", healthcheck=NO_HEALTHCHECK, aliases=(name,))

    def run(self, rnd: int, client: str, server: str) -> dict[str, Any]:
        target = self.servers[server]
        before = target.cpu()
        load = self._host_load(target)
        began = time.monotonic()
        try:
            figures = self._swarm(target, rnd) if client == "swarm" else self._exec(target, TOOLS[client])
        finally:
            if load is not None:
                load.stop()
        after = target.cpu()
        replies = figures.pop("replies_total", 0)
        figures["server_cpu_us_per_reply"] = (round((after.cpu_s - before.cpu_s) * 1e6 / replies, 2)
                                              if replies and after.cpu_s is not None and before.cpu_s is not None
                                              else None)
        free = load.free_cores() if load is not None else None
        figures["host_other_cores"] = None if free is None or load is None or load.cpus is None \
            else round(max(load.cpus - free, 0.0), 2)
        figures.update(round=rnd, client=client, server=server, elapsed_s=round(time.monotonic() - began, 2))
        say(f"calibrate round {rnd + 1}: {client} -> {server}: "
            f"{figures.get('replies_per_s') or 0:,.0f} replies/s, client "
            f"{_fmt(figures.get('client_cpu_us_per_reply'))} us/reply, server "
            f"{_fmt(figures.get('server_cpu_us_per_reply'))} us/reply")
        return figures

    def _host_load(self, target: Target) -> HostLoad | None:
        """Other work on the host meanwhile (lab/measure/host.py), if it can be read."""
        if self.bench.swarm_container is None:
            return None  # the swarm runs as a unit per probe: its CPU is not in one cgroup to leave out
        cgroups = [target.cgroup, self.client_cgroup, Cgroup(self.bench.swarm_container)]
        load = HostLoad(local_proc_stat, cgroups, own=True, every=None) if target.cgroup.local else None
        if load is not None:
            load.start()
        return load

    def _exec(self, target: Target, tool: str) -> dict[str, Any]:
        command = [tool, f"--target={target.address}", f"--connections={CONNECTIONS}",
                   f"--duration={self.duration:g}", f"--warmup={WARMUP:g}", f"--size={SIZE}",
                   f"--pipeline={self.pipeline}"]
        try:
            done = self.client.exec(command, split=True)
            code, stdout, stderr = done.exit_code, done.output, done.stderr
        except EngineError as exc:
            raise EnvironmentProblem(f"cannot run {tool}: {exc.explanation}") from None
        try:
            doc = json.loads(stdout or b"")
        except ValueError:
            raise EnvironmentProblem(f"{tool} against {target.model.name} exited {code}: "
                                     f"{(stderr or b'').decode(errors='replace').strip()[-300:]}") from None
        self.saved += 1
        self.live.dir.write_json(f"probes/native-client/{self.saved:02d}-{tool}-{target.model.name}.json", doc)
        return {"replies_per_s": doc["replies_per_s"] if doc["connected"] else None,
                "client_cpu_us_per_reply": doc["cpu_us_per_reply"] if doc["replies_measured"] else None,
                "latency_p50_us": doc["latency"]["p50_us"], "latency_p99_us": doc["latency"]["p99_us"],
                "connected": doc["connected"], "errors": sum(doc["errors"].values()),
                "replies_total": doc["replies"], "command": command}

    def _swarm(self, target: Target, rnd: int) -> dict[str, Any]:
        flags = [f"--clients={CONNECTIONS}", "--pattern=pingpong", f"--pipeline={self.pipeline}",
                 f"--size={SIZE}", f"--warmup={WARMUP:g}", f"--duration={self.duration:g}", "--trace=off"]
        probe = self.bench.swarm(target, f"calibrate-{rnd + 1}", flags)
        s, cpu = probe.summary, probe.results.get("cpu", {})
        connected = s.get("connections", {}).get("connected", 0)
        return {"replies_per_s": s.get("replies_per_s") if connected else None,
                "client_cpu_us_per_reply": cpu.get("us_per_reply"),
                "latency_p50_us": s.get("latency", {}).get("p50_us"),
                "latency_p99_us": s.get("latency", {}).get("p99_us"),
                "connected": connected, "errors": sum(s.get("errors", {}).values()),
                "replies_total": s.get("replies", 0), "command": probe.command,
                "fast_path": cpu.get("fast_path")}


def bench_calibrate(live: LiveRun, bench: Bench, duration: float | None, pipeline: int | None, rounds: int,
                    make: Callable[..., Calibrator] = Calibrator) -> dict[str, Any]:
    """Every pair of every round (default: 5 s runs, one request in flight), then
    what message tracing costs: bench.json's `calibrate`."""
    duration = duration or 5.0
    pipeline = pipeline or 1
    cal = make(live, bench, duration, pipeline)
    runs = [cal.run(rnd, client, server) for rnd, client, server in calibration_order(rounds)]
    result: dict[str, Any] = {"connections": CONNECTIONS, "size": SIZE, "pipeline": pipeline,
                              "duration_s": duration, "warmup_s": WARMUP, "rounds": rounds, "goals": GOALS,
                              "runs": runs}
    result["summary"] = summarise(runs)
    # then what message tracing costs: msg and conn in turn (ABBA), a fresh server each
    levels = [(rnd, level) for rnd in range(rounds)
              for level in (COMPARED_LEVELS if rnd % 2 == 0 else COMPARED_LEVELS[::-1])]
    result["trace_runs"] = [cal.trace_level(rnd, level) for rnd, level in levels]
    result["trace_cost"] = trace_cost(result["trace_runs"])
    return result


