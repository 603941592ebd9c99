"""A broken model turns the right check red, and only that one.

Each test runs `lab check` against a deliberately broken copy of a model:
LAB_COMPOSE points at a copy of compose.yaml whose service runs something
else, while the model keeps its own model.yaml.  The model's files stay
clean: the break is in the copy's `command:` alone.

- coroutines whose SLEEP blocks: its scheduler's sleep() swapped for
  time.sleep, so a SLEEP holds the only thread.  stalls must turn red on
  sleep_stalls_others and stay green on block_stalls_others.
- threads served by the epoll loop (one thread): CPU-bound WORK now holds
  every client, so cpu-stall turns red on work_stalls_others, and stalls on
  block_stalls_others, while SLEEP (a timer in the loop) still stalls nobody.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.live.judged import ROOT, check, expect_ok

# The coroutines server, imported as a module so that its sleep() can be
# replaced before main() runs: the blocking call returns an empty iterator,
# so `yield from sleep(s)` waits in time.sleep and never yields.
BLOCKING_SLEEP = ("import sys, time; sys.argv[0] = '/srv/coroutines/server.py'; "
                  "sys.path.insert(0, '/srv/coroutines'); import server; "
                  "server.sleep = lambda seconds: iter(time.sleep(seconds) or ()); server.main()")


def broken_compose(tmp_path: Path, service_command: str, replacement: list[str]) -> Path:
    """A copy of compose.yaml with one service's command replaced (build
    contexts made absolute: they are relative to the compose file)."""
    text = (ROOT / "compose.yaml").read_text()
    assert service_command in text, f"compose.yaml no longer has {service_command!r}"
    text = text.replace(service_command, f"command: {json.dumps(replacement)}").replace(
        "./services", f"{ROOT}/services")
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return path


def verdicts_of(doc: dict) -> dict[str, dict]:
    found = {v["expect"]: v for v in doc["checks"]}
    assert len(found) == len(doc["checks"]), "one verdict per key"
    return found


def test_coroutines_whose_sleep_blocks_stall_the_others(engine, app_image, tmp_path: Path) -> None:
    compose = broken_compose(tmp_path, "command: [python3, /srv/coroutines/server.py]",
                             ["python3", "-c", BLOCKING_SLEEP])
    # exit 3 only if the host was too busy to judge: expect_ok then stops the test, saying so
    doc = check("coroutines", "--scenario", "stalls", env={"LAB_COMPOSE": str(compose)}, codes=(1, 3))
    got = verdicts_of(doc)
    assert set(got) == {"block_stalls_others", "sleep_stalls_others"}
    expect_ok(got["sleep_stalls_others"], False)  # SLEEP now holds the only thread
    assert got["sleep_stalls_others"]["figures"]["worst_ms"] >= 300, got["sleep_stalls_others"]
    expect_ok(got["block_stalls_others"], True)  # BLOCK stalled the others before, and still does


def test_threads_served_by_one_loop_stall_the_others_on_work(engine, app_image, tmp_path: Path) -> None:
    compose = broken_compose(tmp_path, "command: [python3, /srv/threads/server.py]",
                             ["python3", "/srv/epoll/server.py"])
    doc = check("threads", "--scenario", "cpu-stall", "--scenario", "stalls",
                env={"LAB_COMPOSE": str(compose)}, codes=(1, 3))
    got = verdicts_of(doc)
    assert set(got) == {"work_stalls_others", "block_stalls_others", "sleep_stalls_others"}
    work = got["work_stalls_others"]
    expect_ok(work, False)  # the loop runs the WORK to its end before anyone else
    assert work["figures"]["share"] >= 0.6, work  # the others waited most of the WORK's own time
    expect_ok(got["block_stalls_others"], False)
    expect_ok(got["sleep_stalls_others"], True)  # a timer in the loop: the one claim that still holds
