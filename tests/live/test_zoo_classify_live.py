"""`lab classify` against the zoo: third-party servers nobody in this project
wrote (tests/zoo/zoo.yaml, each one's model verified by hand), as a user
would classify a server of their own: each in its own container on a plain
network, reached with --network and --external.

Every server runs at once, in the lab's box, started through the lab's engine
but NOT labelled as the lab's (a user's own servers are not): the verb finds
a container by its name when told to probe it, and by an IP address it finds
none.  They carry a label of their own, by which the fixture removes them.  The verb runs
once per protocol, each run classifying that protocol's servers by container
name (so their containers are found and their tasks read); the runs go two
at a time, since the hold probe judges by whether a request is answered at
all, not by how fast.  Then:

- with the process table, every server is named with its class and its size
  (a pool's N, an event loop's workers, c processes or threads per connection);
- by timing alone (the same observations without the table), every server
  gets the right bound: one, N, or none within the probe's reach;
- the verb itself by timing alone, on servers addressed by IP (no container
  found), one of each bound;
- a protocol mismatch (an HTTP probe against a line server), and a server
  that never answers, are one line and exit 2.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from lab.console import say
from lab.observe import classify
from lab.observe.classify import CONCURRENT, POOL
from tests.live.judged import lab
from tests.unit.test_classify import observation
from tests.zoo import zoo

ZOO = zoo.load()
REACH = 32  # the hold probe's largest K (lab/observe/probes.py STEPS)
BLIND = ("pydoc", "gunicorn", "webfs", "socat")  # one of each bound (1, a pool, a cap, none), by timing alone


ZOO_LABEL = "org.iolab.zoo"  # not the lab's own labels: these stand for a user's servers


@pytest.fixture(scope="module")
def zoo_up(engine) -> Any:
    """Every zoo server, each in its own container on one network of this session."""
    tag = zoo.image(engine, say=say)
    labels = {ZOO_LABEL: engine.lab}
    net = f"{engine.lab}-zoo"
    try:
        engine.create_network(net, internal=True, labels=labels)
        with ThreadPoolExecutor(4) as pool:  # each waits for its server to listen: start them together
            units = dict(zip(ZOO.servers, pool.map(lambda s: zoo.start(
                engine, s, tag, net, labels=labels, name=f"{engine.lab}-zoo-{s}"), ZOO.servers)))
        yield {"network": net, "units": units}
    finally:
        remove_labelled(engine.client, f"{ZOO_LABEL}={engine.lab}")


def remove_labelled(client: Any, label: str) -> None:
    """Every container, then every network, carrying ``label``."""
    for c in client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in client.networks.list(filters={"label": label}):
        n.remove()


def classify_all(names: list[str], network: str, protocol: str, by: dict[str, str]) -> dict[str, Any]:
    """One `lab classify --json` over ``names`` (addressed as ``by`` says): each one's record."""
    done = lab("classify", *[f"{by[n]}:{zoo.PORT}" for n in names], "--network", network, "--external",
               "--protocol", protocol, "--json", timeout=900)
    assert done.returncode in (0, 3), done.stderr[-2000:]
    doc = json.loads(done.stdout)
    return {n: t for n, t in zip(names, doc["targets"])}


@pytest.fixture(scope="module")
def classified(zoo_up) -> dict[str, Any]:
    by_name = {n: u.name for n, u in zoo_up["units"].items()}
    groups: dict[str, list[str]] = {}
    for s in ZOO.servers.values():
        groups.setdefault(s.protocol, []).append(s.name)
    http = groups.pop("http")
    batches = [(http[: len(http) // 2], "http"), (http[len(http) // 2:], "http"),
               *[(names, p) for p, names in groups.items()]]
    with ThreadPoolExecutor(2) as pool:
        found = pool.map(lambda b: classify_all(b[0], zoo_up["network"], b[1], by_name), batches)
    return {k: v for part in found for k, v in part.items()}


def want_bound(s: zoo.Server) -> int | None:
    """The bound the probe can see: the truth's, within its reach."""
    b = s.truth.bound
    return None if b == zoo.UNBOUNDED or int(b) > REACH else int(b)


@pytest.mark.parametrize("name", sorted(ZOO.servers))
def test_with_the_process_table_every_server_is_named_with_its_size(classified: dict[str, Any], name: str) -> None:
    got, truth = classified[name], ZOO.servers[name].truth
    why = f"{name}: {got['summary']} ({got['confidence']})\n  " + "\n  ".join(got["evidence"])
    assert got["observed"]["table"] and got["confidence"] == "high", why
    if truth.also_seen and got["cls"] == truth.also_seen:  # what this run could see (zoo.yaml's note)
        assert got["bound"] == want_bound(ZOO.servers[name]), why
        return
    assert got["cls"] == truth.cls, why
    if truth.cls in zoo.SIZED:
        assert got["n"] == truth.n, why
    if truth.cls in zoo.PER_CONNECTION:
        per = truth.per_connection
        assert got["per_connection"] == (per["processes"] or per["threads"]), why
    if truth.hybrid:
        assert f"in {got['processes']} processes" in got["summary"] and str(got["processes"]) in truth.hybrid, why
    assert got["bound"] == want_bound(ZOO.servers[name]), why


@pytest.mark.parametrize("name", sorted(ZOO.servers))
def test_by_timing_alone_every_server_gets_its_bound(classified: dict[str, Any], name: str) -> None:
    seen = observation(classified[name]["observed"])
    blind = replace(seen, table=False, base=None, load_threads=None, load_processes=None, idle_cores=None,
                    steps=[replace(s, processes=None, threads=None, readers=None, reader_processes=None)
                           for s in seen.steps])
    got = classify.infer(blind)
    bound, truth = want_bound(ZOO.servers[name]), ZOO.servers[name].truth
    assert got.bound == bound and got.confidence == "medium", got.evidence
    if bound == 1:
        assert got.cls == "one-at-a-time"
    elif bound is not None and truth.cls in ("process-pool", "thread-pool"):
        assert got.cls == POOL and got.n == bound and got.candidates == ["process-pool", "thread-pool"]
    elif bound is None:
        assert got.cls == CONCURRENT and truth.cls in got.candidates


def test_the_verb_by_timing_alone(zoo_up) -> None:
    units = zoo_up["units"]
    by_ip = {n: units[n].state().ip for n in BLIND}
    groups = [([n for n in BLIND if ZOO.servers[n].protocol == p], p)
              for p in sorted({ZOO.servers[n].protocol for n in BLIND})]
    with ThreadPoolExecutor(2) as pool:  # the bound is whether a request is answered, not how fast
        found = pool.map(lambda g: classify_all(g[0], zoo_up["network"], g[1], by_ip), groups)
    got = {k: v for part in found for k, v in part.items()}
    for name, doc in got.items():
        assert doc["observed"]["table"] is False and doc["confidence"] == "medium", doc["evidence"]
        assert doc["bound"] == want_bound(ZOO.servers[name]), (name, doc["evidence"])


def test_an_http_probe_against_a_line_server_is_refused(zoo_up) -> None:
    done = lab("classify", f"{zoo_up['units']['socat'].name}:{zoo.PORT}", "--network", zoo_up["network"],
               "--external", "--protocol", "http", timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("lab: error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "it does not answer in http: 'GET /client0 HTTP/1.1" in errors[0], errors


SILENT = ["python3", "-c", "import socket, signal; s = socket.create_server(('', 12345)); signal.pause()"]


def test_a_server_that_never_answers_is_refused(engine, zoo_up) -> None:
    """Listening, accepting (the kernel does), never reading: one line, exit 2."""
    spec = zoo.box("lighttpd", zoo_up["units"]["lighttpd"].image_id(), zoo_up["network"],
                   name=f"{engine.lab}-zoo-silent", labels={ZOO_LABEL: engine.lab})
    unit = engine.start(replace(spec, command=SILENT))
    done = lab("classify", f"{unit.name}:{zoo.PORT}", "--network", zoo_up["network"], "--external", timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("lab: error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "did not answer one complete line request" in errors[0], errors
