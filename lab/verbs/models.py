"""lab models [NAME...]: the targets, one line each; with a NAME, the whole text of that one.

`lab models` lists every target by kind (the Python models first, then the
references and the real servers) with its one-line summary.  `lab models
threads` prints what the threads model is, in full, and what its model.yaml
promises (the expectations `lab check` judges).  --long prints every
target in full; --json everything, machine-readable.
"""

from __future__ import annotations

import argparse
import json

from ..console import escape, out
from ..plan import models as catalogue


KINDS = [("model", "Python models"), ("reference", "references (calibration, not under study)"),
         ("server", "real servers")]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the server models and what each one does",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="print these targets in full")
    p.add_argument("--long", action="store_true", help="every target in full")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def long_text(m: catalogue.Model) -> None:
    out.print(f"[bold cyan]{escape(m.name)}[/] ({m.kind}, {m.protocol} on port {m.port}"
              + (f", {m.workers} workers" if m.workers else "") + f"): [bold]{escape(m.summary)}[/]")
    out.print(escape(m.description.strip()))
    if m.expect:
        out.print("[bold]promises[/] (model.yaml expect, judged by `lab check`): "
                  + ", ".join(f"{k}={json.dumps(v).strip(chr(34))}" for k, v in m.expect.items()), markup=True)
    out.print("")


def run(args: argparse.Namespace) -> int:
    found = catalogue.all_models()
    if args.json:
        out.print_json(json.dumps({n: {"kind": m.kind, "protocol": m.protocol, "port": m.port,
                                       "summary": m.summary, "description": m.description,
                                       "expect": m.expect} for n, m in found.items()}))
        return 0
    if args.names or args.long:
        for m in [catalogue.get(n) for n in args.names] if args.names else list(found.values()):
            long_text(m)
        return 0
    for kind, title in KINDS:  # the Python models first; references and real servers apart
        chosen = {n: m for n, m in found.items() if m.kind == kind}
        if not chosen:
            continue
        out.print(f"[bold]{title}[/]")
        width = max(len(n) for n in found)
        for name, m in chosen.items():
            out.print(f"  [bold cyan]{name:<{width}}[/]  {escape(m.summary)}")
    out.print("`lab models NAME` for the whole text of one, and what it promises")
    return 0
