"""lab run SCENARIO --model M [--model M...] | --all: run one scenario and show its figures.

Any scenario in scenarios/ (or a YAML file) runs against the models named,
each in a fresh server container, and every figure its judge computed is
printed and written to results.json in the run directory, with the verdict
against the model's model.yaml where the model declares one.  The heavy
`c10k` scenario lives here: `lab run c10k --model epoll`.  Exit 0 when
every verdict held, 1 when one did not, 3 when some could not be judged.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.table import Table

from ..checks.session import RunRequest, run_scenario
from ..checks.verdict import Verdict, conclude, outcome
from ..console import out, say
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one scenario (e.g. c10k) against models and show its figures",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", help="a scenario name (see scenarios/) or a YAML file")
    p.add_argument("--model", action="append", default=[], help="a model to run it on; repeatable")
    p.add_argument("--all", action="store_true",
                   help="every Python model that declares what it judges (references, servers: by name)")
    p.add_argument("--json", action="store_true", help="print results.json on stdout")
    _args.orchestrator(p, replicas=True)
    p.set_defaults(func=run)


def figures_table(verdicts: list[Verdict]) -> Table:
    t = Table(title="figures", header_style="bold")
    t.add_column("model", style="bold")
    t.add_column("figure")
    t.add_column("value", overflow="fold")
    for v in verdicts:
        for i, (key, value) in enumerate(v.figures.items()):
            shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            t.add_row(v.model if i == 0 else "", key, shown)
    return t


def _progress(model: str, scenario: str, verdicts: list[Verdict] | None) -> None:
    if verdicts is not None:
        say(f"{model}: {scenario} {outcome(verdicts)}")


def run(args: argparse.Namespace) -> int:
    done = run_scenario(RunRequest(args.scenario, args.model, args.all, args.orchestrator, args.swarm_replicas),
                        _progress)
    if args.json:
        json.dump(done.report, sys.stdout, indent=2)
    else:
        out.print(figures_table(done.verdicts))
        for v in done.verdicts:
            out.print(f"{v.model}: {v.expected} -> {v.observed} [{v.outcome}]", markup=False)
        out.print(f"run directory {done.run_dir}", markup=False)
    return conclude(done.verdicts, f"{done.run_dir}/results.json")
