"""Kill the lab at random points, again and again, and prove nothing is left.

    python tests/stress_kill.py [--rounds 20] [--seed N] [--model threads]

A first, uninterrupted `lab up` measures how long one takes (and builds the
image if needed).  Then each round starts `lab up MODEL` and SIGKILLs it
after a random delay within that time, so the kill lands while it creates
the network, starts containers, waits for health, or just after it finished.  The next lab command must find a dead run's
resources and remove them; a run that finished (kept by design) is taken
down with `lab down`.  At the end no resource with the lab's labels may
remain.  Exit 0 if none does, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--model", default="threads")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    began = time.monotonic()
    first = lab("up", args.model, "--duration", "20")
    took = time.monotonic() - began
    if first.returncode != 0:
        print(f"stress: the calibration `lab up` failed: {first.stderr.strip()}", flush=True)
        return 1
    lab("down")
    print(f"stress: {args.rounds} rounds, seed {seed}; one `lab up` takes {took:.2f}s", flush=True)
    swept = kept = 0
    for i in range(args.rounds):
        proc = subprocess.Popen([sys.executable, "-m", "lab", "up", args.model, "--duration", "20"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0, took * 1.1)
        try:
            proc.wait(delay)  # finished before the kill: a kept run
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        status = lab("status")  # any lab command sweeps dead runs first
        swept += status.stderr.count("removed dead run")
        down = lab("down")  # runs that completed are kept on purpose
        kept += down.stdout.count("removed run")
        print(f"round {i + 1}: killed after {delay:.2f}s (exit {proc.returncode})", flush=True)
    left = lab("status", "--json")
    runs = json.loads(left.stdout)["runs"] if left.returncode == 0 else None
    print(f"stress: {swept} dead runs swept, {kept} finished runs taken down, "
          f"left behind: {runs}", flush=True)
    return 0 if runs == [] else 1


if __name__ == "__main__":
    sys.exit(main())
