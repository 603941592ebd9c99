"""classify's inference rules on recorded observations, without Docker.

tests/fixtures/classify-observations.json holds what `lab classify --json`
observed of every lab model and real server on a 2-core machine (as_fixture
below made it); infer() must name each as its model.yaml declares, though
it never reads one.  The same observations without the process table must
still give the right bound.  Then each class from a small hand-made
observation, the ambiguous cases (uncertain, with the candidates: never a
guess), the readers of /proc, and the verb's bad input (one line, exit 2,
before anything is probed).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lab.observe import classify, local, tasks
from lab.observe.classify import CONCURRENT, POOL, UNCERTAIN, Held, Observation
from lab.plan import models

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "classify-observations.json"


def observation(doc: dict[str, Any]) -> Observation:
    doc = dict(doc)
    steps = [Held(**s) for s in doc.pop("steps")]
    base = tuple(doc.pop("base")) if doc.get("base") else None
    return Observation(**{**doc, "steps": steps, "base": base})


def as_fixture(doc: dict[str, Any]) -> dict[str, Any]:
    """How tests/fixtures/classify-observations.json was made from `lab classify --json`."""
    return {t["target"]: t["observed"] for t in doc["targets"]}


RECORDINGS = {name: observation(doc) for name, doc in json.loads(RECORDED.read_text()).items()}


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


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_without_the_process_table_the_bound_is_still_right(name: str) -> None:
    """Timing alone: one at a time, a pool of N (processes or threads), or no
    bound within reach (candidates), at medium confidence."""
    blind = replace(RECORDINGS[name], table=False, base=None, load_threads=None, load_processes=None,
                    idle_cores=None, steps=[replace(s, processes=None, threads=None, readers=None,
                                                    reader_processes=None) for s in RECORDINGS[name].steps])
    found = classify.infer(blind)
    cls, n = classify.declared(models.get(name))
    want = {"one-at-a-time": "one-at-a-time", "process-pool": POOL, "thread-pool": POOL}.get(cls, CONCURRENT)
    assert (found.cls, found.confidence) == (want, "medium"), found.evidence
    assert found.bound == (1 if cls == "one-at-a-time" else n if want == POOL else None)
    assert found.candidates or want == "one-at-a-time"


# -- each class, from a small hand-made observation -----------------------------------------

def step(k: int, answered: bool, p: int, t: int, readers: int | None = None, rp: int | None = None,
         mode: str = "unfinished") -> Held:
    return Held(k, mode, k, answered, 1.0 if answered else None, processes=p, threads=t, readers=readers,
                reader_processes=rp if rp is not None else (1 if readers else readers))


def seen(base: tuple[int, int], steps: list[Held], bound: int | None = None, **kw: Any) -> Observation:
    return Observation("x", "line", table=True, base=base, steps=steps, bound=bound,
                       reach=max(s.k for s in steps), **kw)


CLASSES = {
    "blocking": (seen((1, 1), [step(1, False, 1, 1, 1)], bound=1), ("one-at-a-time", 1, None)),
    "forking": (seen((1, 1), [step(1, True, 2, 2, 1, 1), step(2, True, 3, 3, 2, 2), step(8, True, 9, 9, 8, 8)]),
                ("process-per-connection", None, 1)),
    "socat fork+exec": (seen((1, 1), [step(1, True, 3, 3, 1, 1), step(4, True, 9, 9, 4, 4),
                                      step(8, True, 17, 17, 8, 8)]), ("process-per-connection", None, 2)),
    "threads": (seen((1, 1), [step(1, True, 1, 2, 1), step(4, True, 1, 5, 4), step(8, True, 1, 9, 8)]),
                ("thread-per-connection", None, 1)),
    "prefork": (seen((5, 5), [step(1, True, 5, 5, 1, 1), step(2, True, 5, 5, 2, 2), step(4, False, 5, 5, 4, 4),
                              step(3, True, 5, 5, 3, 3)], bound=4), ("process-pool", 4, None)),
    "threadpool": (seen((1, 6), [step(2, True, 1, 6, 2), step(4, False, 1, 6, 4), step(3, True, 1, 6, 3)],
                        bound=4), ("thread-pool", 4, None)),
    "epoll": (seen((1, 1), [step(k, True, 1, 1, 1) for k in (1, 2, 4, 8, 16, 32)]), ("event-loop", None, None)),
    "memcached": (seen((1, 10), [step(k, True, 1, 10, min(k, 4)) for k in (1, 2, 4, 8, 16, 32)]),
                  ("event-loop-workers", 4, None)),
    "a loop with a pool for requests": (seen((1, 5), [step(k, True, 1, 5, 1) for k in (1, 2, 4, 8)],
                                             load_threads=5, load_processes=1), ("event-loop-workers", 4, None)),
    "loops whose accepts one of them won": (seen((2, 4), [step(k, True, 2, 4, 1) for k in (1, 2, 4, 8, 16)]
                                                + [step(32, True, 2, 4, 2)], load_threads=2, load_processes=1),
                                               ("event-loop-workers", 2, None)),
    "a thread each, and helpers started with the first (Ruby's WEBrick)": (
        seen((1, 1), [step(k, True, 1, k + 3, k) for k in (1, 2, 4, 8, 16, 32)]), ("thread-per-connection", None, 1)),
    "a loop that caps its connections": (seen((1, 1), [step(k, True, 1, 1, 1) for k in (1, 2, 4, 8, 16)]
                                              + [step(32, False, 1, 1, 1)], bound=32), ("event-loop", None, None)),
}


@pytest.mark.parametrize("case", sorted(CLASSES))
def test_each_class(case: str) -> None:
    o, (cls, n, per) = CLASSES[case]
    found = classify.infer(o)
    assert (found.cls, found.n, found.per_connection, found.confidence) == (cls, n, per, "high"), found.evidence


def test_a_thread_pool_over_processes_is_named_with_both_numbers() -> None:
    o = seen((3, 9), [step(2, True, 3, 9, 2, 1), step(4, False, 3, 9, 4, 2), step(3, True, 3, 9, 3, 2)], bound=4)
    found = classify.infer(o)
    assert (found.cls, found.n, found.processes) == ("thread-pool", 4, 2)
    assert found.summary == "a pool of 4 threads in 2 processes (2 x 2)"


def test_two_processes_per_connection_are_said() -> None:
    assert classify.infer(CLASSES["socat fork+exec"][0]).summary == "2 processes per connection"


def test_idle_connections_parked_and_busy_polling_are_said_not_classified() -> None:
    pool = replace(CLASSES["threadpool"][0], idle_parked=True)
    assert "idle keep-alive connections wait in a poller" in classify.infer(pool).summary
    busy = replace(CLASSES["epoll"][0], idle_cores=0.97)
    found = classify.infer(busy)
    assert found.cls == "event-loop" and "it polls: 1.0 cores busy" in found.summary


def test_helpers_that_burn_cpu_but_seldom_wake_are_not_workers() -> None:
    """Node.js under load: its loop thread, and V8's garbage-collection helpers
    with a few CPU ticks each but a few dozen wake-ups for a thousand replies."""
    from lab.observe.probes import serving_threads
    def at(ticks: int, woken: int) -> tasks.Task:
        return tasks.Task("node", 1, ticks, woken)
    first = {(7, t): at(0, 0) for t in (7, 15, 16, 17, 18)}
    last = {(7, 7): at(57, 50), (7, 16): at(4, 81), (7, 17): at(5, 23), (7, 18): at(5, 28), (7, 15): at(4, 35)}
    used = {k: last[k].ticks for k in last}
    assert serving_threads(first, last, used, sum(used.values()), 1215) == [(7, 7)]
    # waitress: the loop and 4 workers each woke for about every reply they handled
    last = {(7, 7): at(35, 1876), **{(7, t): at(7, 1600) for t in (15, 16, 17, 18)}}
    used = {k: last[k].ticks for k in last}
    assert len(serving_threads(first, last, used, sum(used.values()), 1313)) == 5
    # where wake-ups cannot be read, the CPU alone decides
    unread = {k: tasks.Task("node", 1, t.ticks, -1) for k, t in last.items()}
    assert len(serving_threads(first, unread, used, sum(used.values()), 1313)) == 5


@pytest.mark.parametrize("case, o, candidates", [
    ("growth by no whole number", seen((1, 1), [step(2, True, 1, 1, 1), step(8, True, 4, 4, 1)]),
     ["process-per-connection", "thread-per-connection"]),
    ("held connections closed at the step that waited",
     seen((1, 1), [step(1, True, 1, 1, 1), replace(step(2, False, 1, 1, 1), held=1)], bound=2), []),
])
def test_ambiguous_observations_are_uncertain(case: str, o: Observation, candidates: list[str]) -> None:
    found = classify.infer(o)
    assert found.cls == UNCERTAIN and found.candidates == candidates, (case, found.evidence)


def test_declared_classes_come_from_model_yaml_and_are_never_inferred_from() -> None:
    assert classify.declared(models.get("prefork")) == ("process-pool", 4)
    assert classify.declared(models.get("threadpool")) == ("thread-pool", 4)
    assert classify.declared(models.get("memcached")) == ("event-loop-workers", None)
    found = classify.infer(CLASSES["threadpool"][0])
    assert classify.agrees(found, "thread-pool", 4) and not classify.agrees(found, "thread-pool", 2)
    assert classify.agrees(found, None, None) is None


# -- reading tasks from /proc ----------------------------------------------------------------

def stat(pid: int, tid: int, name: str, ppid: int, ticks: int, woken: int) -> str:
    return f"/proc/{pid}/task/{tid} {woken} {tid} ({name}) S {ppid} 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0"


def test_tasks_are_read_leaving_out_the_init_and_execs() -> None:
    text = "\n".join([stat(1, 1, "docker-init", 0, 9, 3), stat(7, 7, "redis-server", 1, 40, 12),
                      stat(7, 8, "bio_close_file", 1, 1, 2), stat(30, 30, "sh", 0, 1, 1),
                      stat(31, 31, "grep (x)", 30, 2, 1), "/proc/9/task/9 garbage"])
    found = tasks.parse(text)
    assert found[(31, 31)] == tasks.Task("grep (x)", 30, 2, 1)  # a name with a parenthesis
    assert set(tasks.own_tasks(found)) == {(7, 7), (7, 8)}
    # without an init the server is pid 1 of its namespace (parent 0), and an exec's sh has parent 0 too
    no_init = tasks.parse("\n".join([stat(1, 1, "redis-server", 0, 40, 12), stat(1, 2, "bio", 0, 1, 2),
                                      stat(30, 30, "sh", 0, 1, 1), stat(31, 31, "grep", 30, 2, 1)]))
    assert set(tasks.own_tasks(no_init)) == {(1, 1), (1, 2)}


def test_who_woke_between_two_readings() -> None:
    a = tasks.Reading(1.0, {(7, 7): tasks.Task("x", 1, 0, 5), (7, 8): tasks.Task("x", 1, 0, 2)})
    b = tasks.Reading(1.1, {(7, 7): tasks.Task("x", 1, 0, 6), (7, 8): tasks.Task("x", 1, 0, 2),
                            (9, 9): tasks.Task("y", 1, 0, 1)})
    assert tasks.woke(a, b) == {(7, 7)}  # a task born meanwhile did not wake: it was not there to sleep


def test_this_process_and_its_children_are_read() -> None:
    mine = tasks.of_pid(os.getpid())()
    assert (os.getpid(), os.getpid()) in mine and all(t.woken >= 0 for t in mine.values())


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:3039 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 4242 1 0
   1: 0100007F:3039 0100007F:9C40 01 00000000:00000000 00:00000000 00000000 10001        0 4343 1 0
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0
"""


def test_a_listening_socket_is_found_by_its_port() -> None:
    assert local.listening_inodes(TCP, 12345) == {"4242"}  # established (01) and other ports left out
    assert local.listening_inodes(TCP, 80) == set()


# -- the verb's bad input: one line, exit 2, before anything is probed ---------------------------

@pytest.mark.parametrize("argv, message", [
    (["classify", "bogus"], "'bogus' is neither a model or server name"),
    (["classify", "host:99999"], "is neither a model or server name"),
    (["classify", "redis", "--network", "x"], "--network and --container are for HOST:PORT targets"),
    (["classify", "redis", "--external"], "--external is for HOST:PORT targets"),
    (["classify", "redis", "--protocol", "smtp"], "invalid choice: 'smtp'"),
    (["classify", "127.0.0.1:1", "--pid", "999999999"], "--pid 999999999: no such process on this host"),
    (["classify", "10.0.0.1:80", "--pid", "1"], "--pid probes this host over loopback only"),
    (["classify", "redis", "--pid", "1"], "--pid takes one HOST:PORT target"),
    (["classify", "127.0.0.1:1", "--pid", str(os.getpid())], "listen(s) on port 1"),
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
