"""Behaviour checks: scenarios run against live targets, judged against model.yaml.

    runner.py       each applicable scenario against a model: its probes, then its judge,
                    again when the host was too busy
    context.py      what a judge reads (Context): the model, the scenario, what was recorded
    judges.py       the judges: what each check measures, and how it compares with model.yaml
    domain.py       what each figure a judge reads can physically be: outside it, not judged
    client_side.py  the judges' reading of a target without the lab's trace (real servers)
    registry.py     each judge by name, with the evidence it needs
    verdict.py      a Verdict per key; checks.json; the exit of a verb that judged
    session.py      `lab check` and `lab run`: the checks in a run of their own

A verdict is green only on positive evidence: each judge states what it
needs, and without it the verdict is "not judged: <what was missing>" (ok
None), never a pass and never a failure.  Which judge a scenario names, and
the model.yaml keys each judge judges, are the scenarios' (lab/plan/scenarios.py).
"""

from .context import Context, tolerances
from .runner import check, run_model
from .verdict import Missing, Verdict, as_json, conclude, counts, need, outcome

__all__ = ["Context", "Missing", "Verdict", "as_json", "check", "conclude", "counts", "need", "outcome", "run_model",
           "tolerances"]
