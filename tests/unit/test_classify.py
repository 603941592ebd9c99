"""classify's inference rules on recorded observations, without Docker.

tests/fixtures/classify-observations.json holds what `lab classify --json`
observed of every lab model and real server on a 2-core machine; infer()
must name each as its model.yaml declares, though it never reads one.  Then
each class from a small hand-made observation, and the ambiguous cases,
which must say "uncertain" (with the candidates) rather than guess; and the
verb's bad input, one line and exit 2, before any container.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lab.observe import classify, probes as observe
from lab.observe.classify import CONCURRENT, POOL, UNCERTAIN, Observation, Stall
from lab.plan import models

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "classify-observations.json"


def recorded() -> dict[str, Observation]:
    found = {}
    for name, doc in json.loads(RECORDED.read_text()).items():
        stalls = [Stall(**s) for s in doc.pop("stalls")]
        doc = {k: tuple(v) if k in ("processes", "threads") and v else v for k, v in doc.items()}
        found[name] = Observation(**{**doc, "stalls": stalls})
    return found


RECORDINGS = recorded()


def test_every_lab_model_and_real_server_was_recorded() -> None:
    assert set(RECORDINGS) == set(models.all_models())


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_recorded_observations_are_classified_as_declared(name: str) -> None:
    found = classify.infer(RECORDINGS[name])
    cls, n = classify.declared(models.get(name))
    assert cls is not None, f"{name} declares nothing classify can be held to"
    assert classify.agrees(found, cls, n), (f"{name}: inferred {found.summary} ({found.confidence}), declared "
                                            f"{cls} {n}; evidence: {found.evidence}")
    assert found.confidence == "high" and found.evidence[-1].startswith("so: ")


def test_the_same_observations_without_the_process_table_say_less() -> None:
    """Timing alone (a server the lab cannot look into): one at a time and
    pools still show, an event loop shows where a slow request stalls
    everyone, and the rest is 'concurrent', at a lower confidence."""
    blind = {n: replace(o, table=False, processes=None, threads=None, ticks=None, serving_threads=None,
                        serving_processes=None, idle_cores=None) for n, o in RECORDINGS.items()}
    got = {n: (f.cls, f.n, f.confidence) for n, o in blind.items() for f in [classify.infer(o)]}
    assert got["blocking"] == ("one-at-a-time", 1, "medium")
    assert got["prefork"] == got["apache-worker"] == (POOL, 4, "medium")
    assert got["redis"] == got["epoll"] == got["asyncio"] == ("event-loop", None, "medium")
    assert got["threads"] == got["postgres"] == got["forking"] == (CONCURRENT, None, "low")
    assert got["nginx"][0] == got["memcached"][0] == CONCURRENT  # HTTP and memcached offer no slow request


# -- each class, from a small observation --------------------------------------------------

def seen(peak: int = 6, *, waited: bool | None = None, processes: tuple[int, int] | None = (1, 1),
         threads: tuple[int, int] | None = (1, 1), serving: int | None = 1, in_processes: int | None = 1,
         stalls: list[Stall] | None = None, answered: int = 6, idle: float | None = 0.0, closed: int = 0) -> Observation:
    table = processes is not None
    return Observation("t", "line", clients=6, connected=6, answered=answered, peak=peak, waited=waited,
                       closed_by_server=closed,
                       table=table, processes=processes, threads=threads, load_clients=8,
                       ticks=None if serving is None else 50, serving_threads=serving,
                       serving_processes=in_processes if serving is not None else None, idle_cores=idle,
                       stalls=stalls or [])


def stall(kind: str, worst: float | None, ms: float = 500, skipped: str | None = None) -> Stall:
    return Stall(kind, {"blocking": "BLOCK 500", "cooperative": "SLEEP 500", "cpu": "WORK 2000000"}[kind], ms,
                 worst, skipped)


STALLED, FREE = [stall("blocking", 490), stall("cpu", 700, 720)], [stall("blocking", 4), stall("cpu", 30, 900)]
CLASSES = [
    ("one-at-a-time", seen(1, waited=True), ("one-at-a-time", 1, "high")),
    ("process-per-connection", seen(processes=(7, 13), threads=(7, 13), serving=8, in_processes=8),
     ("process-per-connection", None, "high")),
    ("thread-per-connection", seen(threads=(1, 7), serving=8, stalls=FREE), ("thread-per-connection", None, "high")),
    ("process-pool", seen(4, waited=True, processes=(5, 5), threads=(5, 5), serving=4, in_processes=4),
     ("process-pool", 4, "high")),
    ("thread-pool", seen(4, waited=True, threads=(9, 9), serving=4, in_processes=2), ("thread-pool", 4, "high")),
    ("event-loop", seen(stalls=STALLED), ("event-loop", None, "high")),
    ("event-loop-busy-polling", seen(idle=0.98), ("event-loop", None, "high")),
    ("event-loop-cooperative-blocking", seen(stalls=[stall("blocking", 5), stall("cpu", 700, 720)]),
     ("event-loop", None, "high")),
    ("event-loop-workers", seen(threads=(10, 10), serving=4), ("event-loop-workers", 4, "high")),
    # Apache event closed two idle keep-alive clients after answering them: left out, the other 4 at once
    ("event-loop-workers-closing-idle-clients", seen(4, closed=2, threads=(9, 9), serving=4, in_processes=2),
     ("event-loop-workers", 4, "high")),
    ("pool-timing-alone", seen(4, waited=True, processes=None, threads=None, serving=None), (POOL, 4, "medium")),
    ("event-loop-timing-alone", seen(processes=None, threads=None, serving=None, stalls=STALLED),
     ("event-loop", None, "medium")),
    ("concurrent-timing-alone", seen(processes=None, threads=None, serving=None, stalls=FREE),
     (CONCURRENT, None, "low")),
]


@pytest.mark.parametrize("case, o, want", CLASSES, ids=[c for c, _, _ in CLASSES])
def test_each_class(case: str, o: Observation, want: tuple[str, int | None, str]) -> None:
    found = classify.infer(o)
    assert (found.cls, found.n, found.confidence) == want, found.evidence


# -- ambiguous: uncertain, never a guess ---------------------------------------------------

AMBIGUOUS = [
    ("a-client-beyond-the-peak-answered-early", seen(4, waited=False), ["one-at-a-time", POOL]),
    ("growth-neither-one-each-nor-none", seen(processes=(1, 4), threads=(1, 4), serving=4),
     ["process-per-connection", "thread-per-connection"]),
    ("as-many-threads-as-clients", seen(threads=(9, 9), serving=8), ["thread-pool", "event-loop-workers"]),
    ("one-thread-yet-work-stalled-nobody", seen(stalls=FREE), ["event-loop", CONCURRENT]),
    ("workers-yet-everyone-stalled", seen(threads=(10, 10), serving=4, stalls=STALLED),
     ["event-loop", "event-loop-workers"]),
    ("a-client-never-answered", seen(answered=5), []),
    ("the-server-closed-too-many", seen(2, closed=4, threads=(9, 9), serving=4), []),
    ("nobody-answered", seen(0, answered=0), []),
]


@pytest.mark.parametrize("case, o, candidates", AMBIGUOUS, ids=[c for c, _, _ in AMBIGUOUS])
def test_ambiguous_observations_are_uncertain(case: str, o: Observation, candidates: list[str]) -> None:
    found = classify.infer(o)
    assert found.cls == UNCERTAIN and found.confidence == "low", found.evidence
    assert found.candidates == candidates
    assert found.summary.startswith("uncertain") and found.evidence[-1].startswith("so: ")


@pytest.mark.parametrize("worst, ms, stalled", [
    (490, 500, True), (300, 500, True), (150, 500, False), (4, 500, False), (200, 500, None), (None, 500, None),
    (100, 0, None),  # a WORK whose own time was not measured
])
def test_a_stall_is_a_share_of_the_slow_requests_length(worst: float | None, ms: float, stalled: bool | None) -> None:
    assert stall("blocking", worst, ms).stalled is stalled
    assert stall("blocking", worst, ms, skipped="why").stalled is None


def test_skipped_probes_and_missing_readings_are_said() -> None:
    o = seen(processes=None, threads=None, serving=None,
             stalls=[Stall("blocking", "a slow request", 0, skipped="the http protocol offers none")])
    o.notes.append("idle CPU, processes and threads: no container to read, so from timing alone")
    found = classify.infer(o)
    assert "a slow request: skipped: the http protocol offers none" in found.evidence
    assert any(line.startswith("not measured: idle CPU") for line in found.evidence)


def test_declared_classes_come_from_model_yaml_and_are_never_inferred_from() -> None:
    assert classify.declared(models.get("prefork")) == ("process-pool", 4)
    assert classify.declared(models.get("threadpool")) == ("thread-pool", 4)
    assert classify.declared(models.get("memcached")) == ("event-loop-workers", None)
    found = classify.infer(seen(4, waited=True, threads=(9, 9), serving=4, in_processes=2))
    assert classify.agrees(found, "thread-pool", 4) and not classify.agrees(found, "thread-pool", 2)
    assert classify.agrees(found, None, None) is None


# -- reading threads' CPU time -------------------------------------------------------------

STAT = """/proc/1/task/1/stat:1 (docker-init) S 0 1 1 0 -1 4194560 0 0 0 0 9 9 0 0 20 0 1 0
/proc/7/task/7/stat:7 (redis-server) S 1 7 7 0 -1 4194560 0 0 0 0 40 12 0 0 20 0 5 0
/proc/7/task/8/stat:8 (bio_close_file) S 1 7 7 0 -1 4194560 0 0 0 0 0 1 0 0 20 0 5 0
/proc/30/task/30/stat:30 (sh) S 0 30 30 0 -1 4194560 0 0 0 0 1 0 0 0 20 0 1 0
/proc/31/task/31/stat:31 (grep (x)) R 30 30 30 0 -1 4194560 0 0 0 0 2 0 0 0 20 0 1 0
"""


def test_each_threads_cpu_time_is_read_from_proc_leaving_out_the_init_and_execs() -> None:
    stats = observe.parse_task_stats(STAT)
    assert stats[(31, 31)] == ("grep (x)", 30, 2)  # a name with a parenthesis
    assert observe.own_tasks(stats) == {(7, 7): 52, (7, 8): 1}
    # without an init the server is pid 1 of its namespace (parent 0), and an exec's sh has parent 0 too
    no_init = {(1, 1): ("redis-server", 0, 52), **{k: v for k, v in stats.items() if k[0] in (30, 31)}}
    assert observe.own_tasks(no_init) == {(1, 1): 52}
    readings = [{(7, 7): 10}, {(7, 7): 30, (9, 9): 4}, {(7, 7): 52}]  # 9 was born, then ended
    assert observe.work_per_thread(readings) == {(7, 7): 42, (9, 9): 4}


def test_slow_requests_are_the_protocols_own() -> None:
    assert [r for _, r, _ in observe.SLOW_OFFERS["line"]] == ["BLOCK 500", "SLEEP 500", "WORK 2000000"]
    assert "http" not in observe.SLOW_OFFERS and "memcached" not in observe.SLOW_OFFERS


# -- the verb's bad input: one line, exit 2, before any container ---------------------------

@pytest.mark.parametrize("argv, message", [
    (["classify", "bogus"], "'bogus' is neither a model or server name"),
    (["classify", "host:99999"], "is neither a model or server name"),
    (["classify", "redis", "--network", "x"], "--network and --container are for HOST:PORT targets"),
    (["classify", "redis", "--external"], "--external is for HOST:PORT targets"),
    (["classify", "redis", "--protocol", "smtp"], "invalid choice: 'smtp'"),
])
def test_classify_user_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from lab import cli
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors leave this way, with the same one line
        code = int(exc.code or 0)
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def as_fixture(doc: dict[str, Any]) -> dict[str, Any]:
    """How tests/fixtures/classify-observations.json was made from `lab classify --json`."""
    return {t["target"]: t["observed"] for t in doc["targets"]}
