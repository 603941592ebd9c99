"""lab compare: the same workloads against every model, side by side.

Each model runs in its own fresh server container per repeat, alone on the
engine (the previous model's containers are removed first, so their CPU never
colours the next one's figures).  Against it the swarm runs each workload of
the table below in turn, each in a fresh swarm container that targets the
model by its service name.  Per workload the lab records the swarm's summary,
the server's CPU over the swarm's measured window (its cgroup's CPU time;
the warm-up left out), its processes, threads and memory under load, the
swarm's own CPU and the whole host's over the same window (what limited the
figure: the swarm, the host or the server), every reading through
lab/measure.  Everything goes into one results.json (schema
iolab.compare/2, lab/report/SCHEMA.md), from which the report is rendered:
report.html, report.md, results.csv and plots/ (`lab report` renders it
again).

The native reference (services/native, model.yaml `kind: reference`) runs
first when it is there, as the ceiling row: what this host and this load
generator can do at all.  It echoes lines, which is all these workloads
ask; a scenario workload (c10k) is judged against model.yaml, so it is
skipped, and the report says so, for any target whose model.yaml makes no
promise for it to judge.  --no-native leaves the reference out.

Real servers (kind: server: Apache, nginx, PostgreSQL, redis, memcached)
run beside them with --targets real, or when named in --models: the same
workloads in each server's own protocol (its default request), ready once something listens and a first
request is answered (they write none of the lab's trace).  Each real
server is also classified (`lab classify`'s probes, on a fresh server of
its own) and the report shows the inferred class beside the declared one;
--classify does it for every target.

Workloads (--scenario NAME[,NAME...] picks some; default: every one marked
default):

    classic    the classic experiment: 3 clients, a message every 50 ms;
               its request/reply pairs draw the timeline
    pingpong   closed loop: 50 connections, one 64-byte request in flight each
               (with --client wrk: also wrk, HTTP GET over 50 connections)
    pipelined  closed loop: 50 connections, 8 requests in flight each
    rate       open loop: 50 connections, 1,000 requests/s in all, latency
               measured from each request's intended send time
    c10k       not a default (about 25 s per model): scenarios/c10k.yaml as
               `lab run c10k` runs it, on a server of its own with the
               scenario's server flags: 10,000 connections, 100 of them busy;
               connections kept, latency, memory per connection at the peak

--checks then runs the behaviour checks (`lab check`'s code) against the
same models, in the same run, into checks.json beside results.json, so the
report's verdict column and checks section have them.

Exit status: 0 every measurement was made and every verdict held; 1 a
measurement failed or a verdict failed (the report says which, and shows the
rest); 2 bad input or no usable engine; 3 a verdict could not be judged
(none failed); 130 interrupted (what the run started is removed).
"""


from __future__ import annotations

import argparse

from ..compare.plan import Request
from ..compare.session import compare, exit_status
from ..compare.workloads import WORKLOADS
from ..console import out, say
from ..report.terminal import print_summary
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="run the same workloads against each model and report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, metavar="A,B,...",
                   help="targets to compare (default: the Python models and the native ceiling; real servers "
                        "by name or with --targets real)")
    p.add_argument("--scenario", default=None, metavar="NAME[,NAME...]",
                   help=f"workloads to run: {', '.join(w.name for w in WORKLOADS)} "
                        f"(default: {', '.join(w.name for w in WORKLOADS if w.default)})")
    p.add_argument("--repeat", type=_args.number(int, 1, 100), default=3,
                   help="fresh server containers per model (default 3)")
    p.add_argument("--duration", type=_args.number(float, 0.2, 3600.0, " seconds"), default=None,
                   help="measured seconds of each workload, after its warm-up (default: each "
                        "workload's own, 1.5 s; c10k keeps its scenario's)")
    p.add_argument("--checks", action="store_true",
                   help="then run the behaviour checks against the same models into this run (checks.json)")
    p.add_argument("--client", default="swarm", metavar="swarm[,wrk]",
                   help="load generators: swarm (always), wrk (HTTP workloads from a tools container too)")
    p.add_argument("--no-native", action="store_true",
                   help="leave out the native reference (the ceiling row), if there is one")
    p.add_argument("--targets", choices=("python", "real"), default="python",
                   help="python: the Python models and the native ceiling (default); real: and the real "
                        "servers (Apache, nginx, PostgreSQL, redis, memcached), each also classified")
    p.add_argument("--classify", action="store_true",
                   help="classify every target (`lab classify`'s probes), not only the real servers")
    _args.orchestrator(p, replicas=True)
    p.set_defaults(func=run)



def run(args: argparse.Namespace) -> int:
    done = compare(Request(models=args.models, scenario=args.scenario, repeat=args.repeat, duration=args.duration,
                           checks=args.checks, client=args.client, no_native=args.no_native, targets=args.targets,
                           classify=args.classify, orchestrator=args.orchestrator,
                           swarm_replicas=args.swarm_replicas))
    print_summary(out, done.run_dir, done.doc["run"]["measured_s"])
    for line in done.doc["errors"]:
        say(f"problem: {line}")
    return exit_status(done.doc, done.checks)
