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

from .. import checks
from ..console import out, say
from ..errors import UsageError
from ..plan import models, scenarios
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench
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


def figures_table(verdicts: list[checks.Verdict]) -> Table:
    t = Table(title="figures", header_style="bold")
    t.add_column("model", style="bold")
    t.add_column("figure")
    t.add_column("value", overflow="fold")
    for v in verdicts:
        for i, (key, value) in enumerate(v.figures.items()):
            shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            t.add_row(v.model if i == 0 else "", key, shown)
    return t


def run(args: argparse.Namespace) -> int:
    _args.replicas_need_swarm(args)
    if args.all and args.model:
        raise UsageError("name models with --model, or use --all, not both")
    if not args.all and not args.model:
        raise UsageError(f"lab run {args.scenario}: which models? name them with --model M (repeatable) "
                         "or use --all")
    scenario = scenarios.get(args.scenario)
    if args.all:  # the Python models; references and real servers are named
        chosen = [m for m in models.all_models().values() if m.kind == "model" and scenarios.judged_keys(m, scenario)]
    else:
        chosen = [models.get(m) for m in args.model]
    for m in chosen:
        if not scenarios.judged_keys(m, scenario):
            raise UsageError(f"{m.name}'s model.yaml declares none of {', '.join(scenario.judges)}, "
                             f"which {scenario.name} judges")
    if not chosen:
        raise UsageError(f"no model declares {', '.join(scenario.judges)}, which {scenario.name} judges")
    eng = engine(args.orchestrator)
    verdicts: list[checks.Verdict] = []
    with LiveRun(eng, "run", scenario.name, say=say,
                 params={"scenario": scenario.name, "models": [m.name for m in chosen],
                         "orchestrator": eng.kind, "swarm_replicas": args.swarm_replicas}) as live:
        bench = Bench(live, replicas=args.swarm_replicas)
        for model in chosen:
            verdicts += checks.run_model(bench, model, [scenario], lambda m, s, v: v is None or say(
                f"{m}: {s} {checks.outcome(v)}"))
        results = checks.as_json(verdicts, {"run": live.id, "scenario": scenario.name,
                                            "models": [m.name for m in chosen]})
        live.dir.write_json("results.json", results)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
    else:
        out.print(figures_table(verdicts))
        for v in verdicts:
            out.print(f"{v.model}: {v.expected} -> {v.observed} [{v.outcome}]", markup=False)
        out.print(f"run directory {live.dir.path}", markup=False)
    return checks.conclude(verdicts, f"{live.dir.path}/results.json")
