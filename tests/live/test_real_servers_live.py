"""The article's real servers as lab targets: each one comes up with `lab up
NAME --no-swarm`, as a user types it, answers its own Debian client on the
run's private network (curl and nc from the tools container; redis-cli and
psql inside the server's container, where Debian ships them), does its
declared slow thing slowly, and goes with `lab down`.

The servers come up at once (a dozen seconds in all once the images exist;
the first session makes the servers family, about a minute, and the
real-servers image, under one more)."""

from __future__ import annotations

import json
import os
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lab.console import say
from lab.engine import ROLE, SERVICE, Unit
from lab.plan import models
from lab.run import tools
from lab.run.live import LiveRun
from tests.live import judged
from tests.live.judged import lab, run_of

ROOT = Path(__file__).resolve().parents[2]
SERVERS = {n: m for n, m in models.all_models().items() if m.kind == "server"}
APACHES = ("apache-prefork", "apache-worker", "apache-event")



class Server:
    """One real server that `lab up` started: its unit and its run's network."""

    def __init__(self, engine, run: str, name: str) -> None:
        res = engine.runs(run).get(run)
        found = [u for u in (res.units if res else []) if u.labels.get(SERVICE) == name]
        assert found and res and res.networks, f"run {run} has no {name} unit, or no network"
        self.run, self.unit, self.network = run, found[0], res.networks[0].name


def in_server(unit: Unit, script: str, timeout: float = 20) -> str:
    """A shell command inside the server's unit (bounded); its output."""
    code, out = unit.exec(["timeout", f"{timeout:g}", "sh", "-c", script])
    text = out.decode(errors="replace")
    assert code == 0, f"`{script}` in {unit.name} exited {code}: {text[-500:]}"
    return text


@pytest.fixture(scope="module")
def up(engine, real_image):
    """Every real server, each in a run of its own made by `lab up NAME
    --no-swarm`; all taken down by one `lab down` at the end, whatever happened."""
    runs: dict[str, str] = {}
    try:
        with ThreadPoolExecutor(len(SERVERS)) as pool:
            done = dict(zip(SERVERS, pool.map(lambda n: lab("up", n, "--no-swarm", "--name", f"rs-{n}"),
                                              SERVERS)))
        runs.update({name: m.group(1) for name, r in done.items() if (m := judged.UP_RUN.search(r.stdout))})
        for result in done.values():
            run_of(result)  # every one must have come up: else the first failure, in lab's own words
        yield {name: Server(engine, run, name) for name, run in runs.items()}
    finally:
        if runs:
            down = lab("down", *runs.values())
            assert down.returncode == 0, down.stderr
            left = {r: res for r, res in engine.runs().items() if r in runs.values() and not res.empty}
            assert not left, f"lab down left {left}"
    # postgres was stopped the fast way (its start-up script turns SIGTERM into SIGINT)
    log = Path(os.environ["LAB_RUNS_DIR"]) / runs["postgres"] / "logs" / "postgres.log"
    assert "received fast shutdown request" in log.read_text(), log


@pytest.fixture(scope="module")
def clients(engine):
    """A run of the test's own for the tools container (curl, nc)."""
    with LiveRun(engine, "test", "real-servers", say=say) as live:
        yield live


def test_the_seven_servers_are_declared_with_their_protocols() -> None:
    assert {n: m.protocol for n, m in SERVERS.items()} == {
        "apache-prefork": "http", "apache-worker": "http", "apache-event": "http", "nginx": "http",
        "postgres": "postgres", "redis": "redis", "memcached": "memcached"}
    assert all(m.port == 12345 for m in SERVERS.values())


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_each_comes_up_healthy_in_the_labs_box(up, engine, name: str) -> None:
    server = up[name].unit
    assert server.state().health == "healthy"
    # the lab's image (made again if services/ changed since the fixture made it)
    assert engine.image_labels(server.image_id()).get(ROLE) == "real-servers"
    limits = server.limits()
    assert limits.pids and limits.memory and limits.nano_cpus, limits
    # The server's own processes (not this exec): uid 10001, no capability at all.
    # runc:[...] is the engine starting an exec (this one, or a health check) before it drops to the user
    status = in_server(server, "for p in /proc/[0-9]*; do [ $p = /proc/1 ] || [ $p = /proc/$$ ] || "
                               "grep -q '^Name:.runc:' $p/status 2>/dev/null || "
                               "grep -E '^(Name|Uid|CapEff):' $p/status 2>/dev/null; done")
    uids = re.findall(r"^Uid:\s+(\d+)", status, re.M)
    caps = re.findall(r"^CapEff:\s+(\w+)", status, re.M)
    assert uids and set(uids) == {"10001"}, status
    assert caps and set(caps) == {"0000000000000000"}, status
    assert "writable" not in in_server(server, "touch /probe 2>/dev/null && echo writable || echo read-only")


@pytest.mark.parametrize("name", [*APACHES, "nginx"])
def test_http_servers_answer_curl_on_any_path(up, clients, name: str) -> None:
    got = tools.run(clients, ["curl", "-sS", "-w", "%{http_code}\\n", "http://server:12345/client1",
                              "http://server:12345/no/such/page"], timeout=30, network=up[name].network)
    assert got.code == 0, got
    pages = got.text.split("\n")
    who = "nginx" if name == "nginx" else "apache"
    assert pages == [f"hello from {who}", "200", f"hello from {who}", "200", ""], got.text


def test_redis_answers_redis_cli(up) -> None:
    server = up["redis"].unit
    assert in_server(server, "redis-cli -h server -p 12345 PING").strip() == "PONG"
    # persistence off, DEBUG on, as declared
    assert in_server(server, "redis-cli -p 12345 CONFIG GET save").split() == ["save"]
    assert in_server(server, "redis-cli -p 12345 DEBUG SLEEP 0").strip() == "OK"


def test_postgres_answers_psql_over_the_network_as_lab(up) -> None:
    server = up["postgres"].unit
    # TCP to the alias, trusted as a host on the lab's network (pg_hba samenet)
    got = in_server(server, "psql -h server -p 12345 -U lab -d lab -tAc "
                            "'SELECT 1, current_user, current_database(), current_setting($$max_connections$$)'")
    assert got.strip() == "1|lab|lab|200", got
    assert "connection authorized: user=lab database=lab" in server.logs(stdout=False, stderr=True).decode()


def test_memcached_answers_nc(up, clients) -> None:
    got = tools.run(clients, ["nc", "-q", "2", "server", "12345"], timeout=30, network=up["memcached"].network,
                    stdin=b"version\r\nset k 0 0 2\r\nhi\r\nget k\r\nquit\r\n")
    assert got.code == 0, got
    assert re.fullmatch(rb"VERSION 1\.6\.\d+\r\nSTORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n", got.stdout), got.stdout


@pytest.mark.parametrize("name", [n for n, m in sorted(SERVERS.items()) if "slow" in m.spec])
def test_the_declared_slow_request_takes_its_time(up, clients, name: str) -> None:
    """`slow:` in model.yaml names one request and how long it takes: sent by
    the server's own client, the reply comes, and not before (timed inside
    the container, so only the server can make it late or early)."""
    slow = SERVERS[name].spec["slow"]
    request, ms = slow["request"], slow["ms"]
    server = up[name].unit
    if SERVERS[name].protocol == "http":
        got = tools.run(clients, ["curl", "-sS", "-w", "%{http_code} %{time_total}\\n",
                                  f"http://server:12345{request}"], timeout=30, network=up[name].network)
        assert got.code == 0, got
        assert re.fullmatch(rf"slept {ms}\n200 [\d.]+\n", got.text), got.text
        took_s = float(got.text.split()[-1])
        assert took_s >= ms / 1000, got.text
        return
    client = {"redis": f"redis-cli -p 12345 {request}",
              "postgres": f"psql -v ON_ERROR_STOP=1 -tAc {shlex.quote(request)}"}
    timed = in_server(server, f"set -e; s=$(date +%s%N); {client[SERVERS[name].protocol]}; e=$(date +%s%N); "
                              "echo took $(( (e - s) / 1000000 ))")
    took = re.search(r"took (\d+)", timed)
    assert took and int(took.group(1)) >= ms, timed
    if name == "redis":
        assert timed.startswith("OK"), timed


def test_apache_logs_each_request_as_json_with_its_pid(up, clients) -> None:
    server = up["apache-prefork"].unit
    tools.run(clients, ["curl", "-s", "http://server:12345/traced"], timeout=30, network=up["apache-prefork"].network)
    lines = [json.loads(x) for x in server.logs(stdout=True, stderr=False).decode().splitlines() if x.startswith("{")]
    traced = [x for x in lines if x["req"] == "/traced"]
    assert traced and traced[0]["status"] == 200 and traced[0]["pid"] > 1, lines[-3:]


def test_workers_sizes_the_apache_pool_and_odd_pools_are_refused(engine, real_image) -> None:
    done = lab("up", "apache-prefork", "--no-swarm", "--workers", "2", "--name", "rs-two")
    run = None
    try:
        run = run_of(done)
        procs = in_server(Server(engine, run, "apache-prefork").unit, "ps -C apache2 -o ppid= | sort | uniq -c")
        assert sorted(line.split()[0] for line in procs.strip().splitlines()) == ["1", "2"], procs  # parent + 2
    finally:
        if run:
            assert lab("down", run).returncode == 0
    odd = lab("up", "apache-worker", "--no-swarm", "--workers", "3", "--name", "rs-odd", "--timeout", "30")
    assert odd.returncode == 2, odd.stdout + odd.stderr
    errors = [line for line in odd.stderr.splitlines() if line.startswith("lab: error:")]  # not progress lines
    assert len(errors) == 1 and "--workers must be a multiple of 2, not 3" in errors[0], odd.stderr
