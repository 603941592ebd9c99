"""Kill the lab at random points, again and again, and prove nothing is left.

    python tests/stress_kill.py [--rounds 20] [--seed N] [--model threads] [--json FILE]

The lab's image is built first if needed; then a first, uninterrupted `lab
up` measures how long one takes.  Then each round starts `lab up MODEL` and kills it after a
delay within that time; the delays are spread evenly over it (one random
point in each slice), so the kills land before anything exists, while it
creates the network and starts containers, waits for health, or just after
it finished.  At the kill, the process is first stopped (SIGSTOP), the
engine is asked what this lab has, and only then is it killed (SIGKILL):
that is the phase the kill caught.

    before      nothing of the run existed yet
    mid-start   some of its resources existed, and it was not yet kept
    kept        it had finished: its keep marker existed (kept by design)
    finished    it exited on its own before the kill

The next lab command must find a mid-start run dead and remove it; a kept
run is taken down with `lab down`.  Each round checks that its run is gone
afterwards, and at the end no resource with the lab's labels may remain.

Exit 0: nothing left, every round cleaned up, and at least one kill landed
mid-start.  1: something was left or a round's run was not removed.  3:
nothing was left but no kill landed mid-start (not judged: run more rounds).

Without LAB_NAME set it runs as a lab of its own, so `lab down` between
rounds never touches a user's runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LAB_NAME", f"iolabstress-{os.getpid()}")

from lab.run import images
from lab.engine import ROLE, SERVICE, Engine, connect  # noqa: E402


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def what_exists(engine: Engine) -> tuple[str | None, list[str], bool]:
    """(run id, its resources, kept?) for this lab's one run, as the engine
    shows it now (None: nothing of this lab exists)."""
    runs = engine.runs()
    if not runs:
        return None, [], False
    run, res = next(iter(runs.items()))
    things = [f"network {n.name}" for n in res.networks]
    things += [f"container {c.labels.get(SERVICE, c.name)}" for c in res.units]
    things += [f"volume {v.labels.get(ROLE, v.name)}" for v in res.volumes]
    return run, things, res.kept


def kill_round(engine: Engine, model: str, delay: float) -> dict[str, Any]:
    """One `lab up`, killed after ``delay``; what the kill caught."""
    proc = subprocess.Popen([sys.executable, "-m", "lab", "up", model, "--duration", "20"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGSTOP)  # hold it still while the engine is asked
    run, things, kept = what_exists(engine)
    if proc.returncode is not None:
        phase = "finished"
    else:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        phase = "kept" if kept else "mid-start" if things else "before"
    return {"delay_s": round(delay, 3), "phase": phase, "run": run, "resources": things,
            "exit": proc.returncode}


def clean_up(engine: Engine, kill: dict[str, Any]) -> str | None:
    """`lab status` (which sweeps dead runs), then `lab down` (which takes
    down kept ones); a problem, if this round's run is still there."""
    status, down = lab("status"), lab("down")
    kill["swept"] = f"removed dead run {kill['run']}" in status.stderr if kill["run"] else False
    kill["taken_down"] = f"removed run {kill['run']}" in down.stdout if kill["run"] else False
    left = engine.runs(kill["run"]) if kill["run"] else engine.runs()
    if any(not res.empty for res in left.values()):
        return f"after a kill {kill['phase']}, {kill['run'] or 'a run'} is still there: {sorted(left)}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--model", default="threads")
    p.add_argument("--json", type=Path, default=None, help="write every round's phase and outcome here")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    engine = connect()
    # the image first: a build inside the calibration would stretch every delay past the start-up
    images.ensure_app(engine, lambda line: print(f"stress: {line}", flush=True))
    began = time.monotonic()
    first = lab("up", args.model, "--duration", "20")
    took = time.monotonic() - began
    if first.returncode != 0:
        print(f"stress: the calibration `lab up` failed: {first.stderr.strip()}", flush=True)
        return 1
    lab("down")
    print(f"stress: {args.rounds} rounds, seed {seed}; one `lab up` takes {took:.2f}s", flush=True)
    # one random point in each of `rounds` equal slices of the start-up, in random order
    delays = [took * 1.1 * (i + rng.random()) / args.rounds for i in range(args.rounds)]
    rng.shuffle(delays)
    kills, problems = [], []
    for i, delay in enumerate(delays):
        kill = kill_round(engine, args.model, delay)
        problem = clean_up(engine, kill)
        if problem:
            problems.append(f"round {i + 1}: {problem}")
        kills.append(kill)
        print(f"round {i + 1}: killed after {delay:.2f}s, {kill['phase']}"
              + (f" ({', '.join(kill['resources'])})" if kill["resources"] else "")
              + (f"; {problem}" if problem else ""), flush=True)
    left = lab("status", "--json")
    runs = json.loads(left.stdout)["runs"] if left.returncode == 0 else None
    phases = {ph: sum(k["phase"] == ph for k in kills) for ph in ("before", "mid-start", "kept", "finished")}
    print(f"stress: phases {phases}; left behind: {runs}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"seed": seed, "took_s": round(took, 3), "kills": kills,
                                         "phases": phases, "problems": problems, "left": runs}, indent=1))
    if runs != [] or problems:
        return 1
    return 0 if phases["mid-start"] else 3


if __name__ == "__main__":
    sys.exit(main())
