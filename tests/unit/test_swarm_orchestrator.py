"""The Swarm-mode orchestrator at the engine boundary, without a swarm.

Only one engine can run here (no Docker-in-Docker), so what needs several
nodes is proven against fake node lists and fake API answers: placement by
node label, the registry rule and the push by digest, the service spec that
keeps the box (and what API 1.41 cannot express, said in words), each
replica's results found in the service's output, and clocks: a node's
offset measured, its error bounded, and the replicas' times moved onto one
axis before they are merged."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from lab import config
from lab.engine import Clock, EngineError, Output, Unreachable
from lab.engine.base import Exec, results_in
from lab.engine.local import measure_clock
from lab.engine.swarmmode import NO_SWARM_MANAGER, ServiceUnit, SwarmModeEngine
from lab.engine.swarmmode_spec import Node, constraints, registry_needed, service_create
from lab.errors import EnvironmentProblem, UsageError
from lab.measure import merge
from lab.plan import compose

TOPOLOGY = compose.load_topology(config.compose_file(), env={})


def spec(service: str, **changes: Any) -> Any:
    unit = compose.unit_spec(TOPOLOGY.service(service), image="iolab/app:x", name=f"run-{service}",
                             network="run", labels={"org.iolab.lab": "t"})
    return unit.but(role="swarm" if service in ("swarm",) else "server", **changes)


# -- placement -----------------------------------------------------------------------

SERVER, LOAD, PLAIN = (Node("s", "big", {"iolab.role": "server"}), Node("l", "fast", {"iolab.role": "load"}),
                       Node("p", "plain"))


@pytest.mark.parametrize("nodes, role, want", [
    ([PLAIN], "server", []),                                      # no labels: anywhere (one node)
    ([PLAIN], "swarm", []),
    ([SERVER, PLAIN], "server", ["node.labels.iolab.role==server"]),
    ([SERVER, PLAIN], "swarm", []),                               # no load nodes: the swarm anywhere
    ([SERVER, LOAD, PLAIN], "swarm", ["node.labels.iolab.role==load"]),
    ([SERVER, LOAD], "tools", ["node.labels.iolab.role==load"]),  # wrk and curl are load too
    ([SERVER, LOAD], "client", ["node.labels.iolab.role==load"]),
    ([LOAD], "server", []),
])
def test_units_go_to_the_nodes_labelled_for_their_role(nodes, role, want) -> None:
    assert constraints(role, nodes) == want


def test_a_node_is_read_from_the_engines_answer() -> None:
    node = Node.of({"ID": "abc", "Spec": {"Labels": {"iolab.role": "load"}, "Availability": "active"},
                    "Description": {"Hostname": "h1", "Resources": {"NanoCPUs": 8_000_000_000}},
                    "Status": {"State": "ready"}, "ManagerStatus": {"Leader": True}})
    assert node == Node("abc", "h1", {"iolab.role": "load"}, True, 8, True)
    drained = Node.of({"ID": "d", "Spec": {"Availability": "drain"}, "Status": {"State": "ready"}})
    assert not drained.ready


# -- images on every node ----------------------------------------------------------------

def test_one_node_needs_no_registry_and_several_do() -> None:
    registry_needed([PLAIN], None)
    registry_needed([SERVER, LOAD], "reg:5000")
    registry_needed([SERVER, Node("x", "down", ready=False)], None)  # one node that can run anything
    with pytest.raises(EnvironmentProblem) as refused:
        registry_needed([SERVER, LOAD, PLAIN], None)
    line = str(refused.value)
    assert "\n" not in line and "3 nodes" in line and "set LAB_REGISTRY=HOST:PORT" in line


class FakeImage:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def tag(self, repo: str, tag: str) -> None:
        self.log.append(("tag", repo, tag))


class NoneListed:
    """A collection of the SDK's (containers, networks, ...) with nothing in it."""

    def list(self, *args: Any, **kw: Any) -> list[Any]:
        return []


class FakeClient:
    """What SwarmModeEngine asks of docker.DockerClient, answered from fixed data."""

    def __init__(self, nodes: list[dict[str, Any]], swarm: dict[str, Any] | None = None,
                 push: list[dict[str, Any]] | None = None, tasks: list[dict[str, Any]] | None = None,
                 logs: bytes = b"") -> None:
        self.log: list[Any] = []
        self._nodes, self._push, self._tasks, self._logs = nodes, push or [], tasks or [], logs
        self._swarm = swarm if swarm is not None else {"LocalNodeState": "active", "ControlAvailable": True,
                                                       "NodeID": "n1"}
        self.api, self.images, self.nodes = self, self, self
        self.containers = self.networks = self.volumes = self.services = self.configs = NoneListed()

    def info(self) -> dict[str, Any]:
        return {"Swarm": self._swarm}

    def list(self) -> list[Any]:  # nodes.list()
        return [type("N", (), {"attrs": n}) for n in self._nodes]

    def get(self, name: str) -> FakeImage:  # images.get()
        self.log.append(("get", name))
        return FakeImage(self.log)

    def push(self, repo: str, tag: str, stream: bool, decode: bool) -> list[dict[str, Any]]:
        self.log.append(("push", repo, tag))
        return self._push

    def tasks(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return self._tasks

    def service_logs(self, service: str, **kw: Any) -> list[bytes]:
        assert kw["details"] and kw["stdout"]
        return [self._logs]


def node(nid: str, host: str, **labels: str) -> dict[str, Any]:
    return {"ID": nid, "Spec": {"Labels": labels, "Availability": "active"},
            "Description": {"Hostname": host}, "Status": {"State": "ready"}}


def test_an_engine_that_is_not_a_swarm_manager_is_refused_in_one_line() -> None:
    for state in ({"LocalNodeState": "inactive"}, {"LocalNodeState": "active", "ControlAvailable": False}):
        with pytest.raises(EnvironmentProblem) as refused:
            SwarmModeEngine(FakeClient([], swarm=state))  # type: ignore[arg-type]
        assert str(refused.value) == NO_SWARM_MANAGER
        assert "docker swarm init" in NO_SWARM_MANAGER and "DOCKER_HOST" in NO_SWARM_MANAGER


def test_with_a_registry_each_image_is_pushed_once_and_used_by_digest(monkeypatch) -> None:
    digest = "sha256:" + "ab" * 32
    client = FakeClient([node("n1", "a"), node("n2", "b")],
                        push=[{"status": "Pushing"}, {"aux": {"Tag": "x", "Digest": digest}}])
    eng = SwarmModeEngine(client)  # type: ignore[arg-type]
    monkeypatch.delenv("LAB_REGISTRY", raising=False)
    with pytest.raises(EnvironmentProblem, match="set LAB_REGISTRY"):
        eng.distribute("iolab/app:123")
    monkeypatch.setenv("LAB_REGISTRY", "reg.example:5000/")
    assert eng.distribute("iolab/app:123") == f"reg.example:5000/iolab/app@{digest}"
    assert eng.distribute("iolab/app:123") == f"reg.example:5000/iolab/app@{digest}"
    assert client.log == [("get", "iolab/app:123"), ("tag", "reg.example:5000/iolab/app", "123"),
                          ("push", "reg.example:5000/iolab/app", "123")]


def test_a_push_the_registry_refuses_says_why() -> None:
    client = FakeClient([node("n1", "a")], push=[{"error": "denied: requested access to the resource is denied"}])
    with pytest.raises(EngineError, match="pushing iolab/app:1 to reg:5000: denied"):
        SwarmModeEngine(client).push("iolab/app:1", "reg:5000")  # type: ignore[arg-type]


def test_one_node_uses_the_engines_own_images(monkeypatch) -> None:
    monkeypatch.delenv("LAB_REGISTRY", raising=False)
    client = FakeClient([node("n1", "a")])
    assert SwarmModeEngine(client).distribute("iolab/app:1") == "iolab/app:1"  # type: ignore[arg-type]
    assert client.log == []


# -- the box, as a Swarm service ---------------------------------------------------------

def test_a_server_keeps_the_box_as_a_service() -> None:
    body, notes = service_create(spec("threads"), "net-id", ["node.labels.iolab.role==server"])
    task = body["task_template"]
    c, limits = task["ContainerSpec"], task["Resources"]["Limits"]
    assert (c["User"], c["ReadOnly"], c["Init"], c["CapabilityDrop"]) == ("10001:10001", True, True, ["ALL"])
    assert c["Ulimits"] == [{"Name": "nofile", "Soft": 20000, "Hard": 20000}]
    assert c["Sysctls"] == {"net.core.somaxconn": "4096"}
    assert c["Mounts"] == [{"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 16 << 20}}]
    assert c["Healthcheck"]["Test"][0] == "CMD" and c["Healthcheck"]["Interval"] == 1_000_000_000
    assert c["StopGracePeriod"] == 5_000_000_000 and c["Command"] == ["python3", "/srv/threads/server.py"]
    assert limits == {"NanoCPUs": 2_000_000_000, "MemoryBytes": 2 << 30, "Pids": 10500}
    assert task["RestartPolicy"] == {"Condition": "none"}  # a crashed server stays down
    assert task["Placement"] == {"Constraints": ["node.labels.iolab.role==server"]}
    assert task["Networks"] == [{"Target": "net-id", "Aliases": ["threads", "server"]}]
    assert task["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "20m", "max-file": "2"}}
    assert body["endpoint_spec"] == {"Mode": "dnsrr"}  # VIP needs IPVS: "No route to host" without it
    assert body["mode"] == {"Replicated": {"Replicas": 1}} and body["labels"]["org.iolab.lab"] == "t"
    assert notes == ["security_opt no-new-privileges:true is not enforced on any service (a Swarm "
                     "service's spec has no such field on API 1.41)"]


def test_the_swarms_replicas_are_told_their_share_and_its_volume_is_said_to_be_a_tmpfs() -> None:
    body, notes = service_create(spec("swarm", replicas=3), "net-id", [])
    c = body["task_template"]["ContainerSpec"]
    assert body["mode"] == {"Replicated": {"Replicas": 3}}
    assert "IOLAB_REPLICA={{.Task.Slot}}/3" in c["Env"]  # swarm.py --replica reads it
    assert {"Type": "tmpfs", "Target": "/results", "ReadOnly": False,
            "TmpfsOptions": {"SizeBytes": 64 << 20}} in c["Mounts"]
    assert any("/results is a tmpfs in each task" in n for n in notes)
    one, _ = service_create(spec("swarm"), "net-id", [])
    assert not any(e.startswith("IOLAB_REPLICA=") for e in one["task_template"]["ContainerSpec"]["Env"])


def test_what_a_tmpfs_cannot_carry_on_swarm_mode_is_said() -> None:
    body, notes = service_create(spec("postgres"), "net-id", [])
    mounts = {m["Target"]: m["TmpfsOptions"] for m in body["task_template"]["ContainerSpec"]["Mounts"]}
    assert mounts["/var/lib/postgresql"] == {"SizeBytes": 256 << 20, "Mode": 0o700}
    assert any("/var/lib/postgresql loses gid, uid" in n for n in notes)


def test_publishing_is_refused_on_swarm_mode(monkeypatch) -> None:
    eng = SwarmModeEngine(FakeClient([node("n1", "a")]))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="--publish is for the local orchestrator"):
        eng.start(spec("threads", publish=True))


# -- each replica's results, from the service's output -----------------------------------

def framed(doc: dict[str, Any]) -> list[bytes]:
    """What swarm.py --results-stdout prints (its own code, through a fake trace)."""
    from swarm.swarm import print_results

    class Trace:
        lines: list[bytes] = []

        def event(self, ev: str, **fields: Any) -> None:
            self.lines.append(json.dumps({"t": 1.0, "ev": ev, **fields}).encode())

    trace = Trace()
    trace.lines = []
    print_results(trace, doc)  # type: ignore[arg-type]
    return trace.lines


def test_results_are_read_back_from_the_output_whole_or_not_at_all() -> None:
    doc = {"schema": "iolab.swarm/1", "pad": "x" * 20000, "n": list(range(3000))}
    lines = framed(doc)
    assert len(lines) > 1 and all(len(line) < 4000 for line in lines)  # trace lines stay whole
    noise = [b'{"t":1,"ev":"connect"}', b"not json"]
    assert json.loads(results_in(b"\n".join([noise[0], *reversed(lines), noise[1]]))) == doc
    assert results_in(b"\n".join(lines[1:])) is None  # a part missing: no document at all
    assert results_in(b"") is None


def task(tid: str, slot: int, node_id: str) -> dict[str, Any]:
    return {"ID": tid, "Slot": slot, "NodeID": node_id, "CreatedAt": "2026",
            "Status": {"State": "complete", "ContainerStatus": {"ContainerID": f"c-{tid}", "ExitCode": 0}}}


def test_each_replicas_results_are_told_apart_by_task_and_carry_their_nodes_clock() -> None:
    one, two = {"replica": 1}, {"replica": 2}
    logs = b"\n".join([*(b"com.docker.swarm.task.id=t1,com.docker.swarm.node.id=n2 " + x for x in framed(one)),
                       *(b"com.docker.swarm.task.id=t2,com.docker.swarm.node.id=n3 " + x for x in framed(two)),
                       b"com.docker.swarm.task.id=t2 " + b'{"t":2,"ev":"done"}'])
    client = FakeClient([node("n1", "manager"), node("n2", "load1", **{"iolab.role": "load"}),
                         node("n3", "load2", **{"iolab.role": "load"})],
                        tasks=[task("t2", 2, "n3"), task("t1", 1, "n2")], logs=logs)
    eng = SwarmModeEngine(client)  # type: ignore[arg-type]
    eng._clocks["n2"] = Clock(0.25, 0.002, "measured by exec")  # as measure_clock found it
    service = type("S", (), {"id": "svc", "name": "run-swarm-001", "attrs": {
        "Spec": {"Labels": {}, "Mode": {"Replicated": {"Replicas": 2}}, "TaskTemplate": {}}}})()
    got = eng.results(ServiceUnit(eng, service), "/results/x/results.json")
    assert [(json.loads(o.data), o.node, o.replica) for o in got] == [(one, "load1", "1/2"), (two, "load2", "2/2")]
    assert got[0].clock == Clock(0.25, 0.002, "measured by exec")
    # node n3 says no engine endpoint: its clock cannot be measured, and says so
    assert got[1].clock.bound_s is None and "no iolab.engine endpoint" in got[1].clock.how
    with pytest.raises(Unreachable, match="label the node iolab.engine=tcp://HOST:PORT"):
        eng.node_client("n3", "the swarm")


# -- clocks: measured, bounded, and applied before merging ---------------------------------

class OtherMachine:
    """A unit whose machine's monotonic clock runs ``ahead`` seconds ahead of ours."""

    def __init__(self, ahead: float, delay: float) -> None:
        self.ahead, self.delay = ahead, delay

    def exec(self, argv: list[str], **_: Any) -> Exec:
        time.sleep(self.delay / 2)  # the way there
        theirs = time.monotonic() + self.ahead
        time.sleep(self.delay / 2)  # and back
        return Exec(0, repr(theirs).encode() + b"\n")


def test_a_nodes_clock_offset_is_measured_within_its_bound() -> None:
    clock = measure_clock(OtherMachine(ahead=1234.5, delay=0.01))  # type: ignore[arg-type]
    assert clock.bound_s is not None and 0.004 <= clock.bound_s < 0.5
    assert abs(clock.offset_s - 1234.5) <= clock.bound_s + 0.001
    assert clock.to_ours(2000.0) == pytest.approx(2000.0 - 1234.5, abs=clock.bound_s + 0.001)


def test_a_node_that_cannot_run_the_probe_is_assumed_and_says_so() -> None:
    class Mute:
        def exec(self, argv: list[str], **_: Any) -> Exec:
            raise EngineError("no python3")

    clock = measure_clock(Mute())  # type: ignore[arg-type]
    assert (clock.offset_s, clock.bound_s) == (0.0, None) and "assumed" in clock.how


def replica_doc(offset: float, client: int, t0: float) -> dict[str, Any]:
    """A replica's results, every stamp on a machine ``offset`` seconds ahead
    of ours: a whole document the swarm's own code made (swarm_docs.py),
    with this replica's figures."""
    from .swarm_docs import whole_results
    doc = whole_results()
    hist = {"unit": "us", "significant_digits": 3, "count": 1, "sum": 900, "min": 900, "max": 900,
            "buckets": [[900, 1]], "clamped": 0}
    doc.update({"started": {"monotonic": t0 + offset, "wall": 1e9}, "ended": {"monotonic": t0 + 2 + offset,
                "wall": 1e9 + 2}, "warmup_s": 0.5, "duration_s": 2.0, "measure_window_s": 1.5,
                "histograms": {"latency": hist, "connect": hist, "handshake": dict(hist, count=0, sum=0, buckets=[])}})
    doc["config"].update(clients=1, active=1, replica={"index": client, "of": 2, "clients": 1, "active": 1})
    doc["summary"].update(clients=1, active=1, hold=0, workers=1, end_reason="duration", replies=10,
                          replies_measured=8, requests_sent=10)
    doc["summary"]["connections"].update(attempted=1, connected=1, tcp_connected=1, failed=0, never_started=0,
                                         clients_connected=1, connect_all_s=0.01, closed_by={"duration": 1})
    doc["cpu"].update(user_s=0.1, sys_s=0.1, workers_s=0.2, measured_s=0.15, total_s=0.2, per_s=0.1)
    doc["workers"] = [{**doc["workers"][0], "ended": t0 + 2 + offset}]
    doc["connections"] = [{**doc["connections"][0], "client": client, "connect_start": t0 + offset,
                           "connect_end": t0 + 0.01 + offset, "tcp_connect_end": t0 + 0.01 + offset,
                           "first_reply": t0 + 0.02 + offset, "last_reply": t0 + 0.02 + offset,
                           "close_t": t0 + 2 + offset}]
    doc["timeline"]["conns"] = [{"client": client, "conn": None, "pairs": [[t0 + 1 + offset, t0 + 1.001 + offset]]}]
    doc["actions"] = [{**doc["actions"][0], "t": 1.0, "client": client, "sent_t": t0 + 1 + offset, "done_t": None}]
    return doc


def test_replicas_on_other_clocks_are_merged_on_ours() -> None:
    t0 = 500.0
    outputs = [Output(json.dumps(replica_doc(100.0, 1, t0)).encode(), Clock(100.0, 0.003, "measured by exec"),
                      "load1", "1/2"),
               Output(json.dumps(replica_doc(-40.0, 2, t0)).encode(), Clock(-40.0, 0.001, "measured by exec"),
                      "load2", "2/2")]
    merged = merge.replicas(outputs, 2)
    assert merged["started"]["monotonic"] == pytest.approx(t0) and merged["ended"]["monotonic"] == pytest.approx(t0 + 2)
    assert [c["connect_start"] for c in merged["connections"]] == pytest.approx([t0, t0])
    assert [c["pairs"][0][0] for c in merged["timeline"]["conns"]] == pytest.approx([t0 + 1, t0 + 1])
    assert [a["sent_t"] for a in merged["actions"]] == pytest.approx([t0 + 1, t0 + 1])
    assert [a["t"] for a in merged["actions"]] == [1.0, 1.0]  # seconds after the start: not a stamp
    s = merged["summary"]
    assert (s["clients"], s["replies"], s["latency"]["count"], s["connections"]["connected"]) == (2, 20, 2, 2)
    assert s["replies_per_s"] == pytest.approx(16 / 1.5, abs=0.1)
    assert merged["clock"]["bound_s"] == 0.003  # the worst of the replicas' bounds, kept with the result
    assert [r["node"] for r in merged["replicas"]] == ["load1", "load2"]
    unknown = merge.replicas([outputs[0], Output(outputs[1].data, Clock(0.0, None, "not measured"))], 2)
    assert unknown["clock"]["bound_s"] is None  # one clock not measured: no bound at all


def test_a_replica_that_sent_nothing_fails_the_merged_run() -> None:
    only = merge.replicas([Output(json.dumps(replica_doc(0.0, 1, 10.0)).encode())], 2)
    assert not only["ok"] and only["exit_code"] == 1
    assert "only 1 of 2 swarm replicas sent results" in only["failures"]
