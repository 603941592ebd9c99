"""A whole results.json (iolab.swarm/1), made by the swarm's own code: one
worker on the test bench (swarm_rig.py) that connected, sent, was answered
and ran a scripted action, its report built into a document as the
swarm's parent builds it.  Tests that need a swarm's results start from a
copy of it, so their fakes cannot drift from what the swarm writes
(tests/unit/test_evidence.py holds them to SWARM_RESULTS)."""

from __future__ import annotations

import copy
import functools
import json
import tempfile
from pathlib import Path
from typing import Any


def whole_results() -> dict[str, Any]:
    """A fresh copy of the document: change it freely."""
    return copy.deepcopy(_built())


@functools.cache
def _built() -> dict[str, Any]:
    from swarm import flags, patterns, results
    from swarm.host import environment
    from .swarm_rig import T0, Rig

    action = patterns.Action(0.001, 1, "STATS")
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), patterns.PingPong(2), clients=2, count=3, actions=[action])
        try:
            c, _ = rig.connect(1, T0)
            rig.turn(T0 + 0.001)  # the action leaves
            rig.answer(c, b"ok\nok\n{}\n", T0 + 0.002)
            rig.answer_all(c, T0 + 0.003)
            report = rig.worker.finish()
        finally:
            rig.close()
    args = flags.parse_args(["--clients", "2", "--pattern", "pingpong", "--pipeline", "2", "--count", "3",
                             "--at", "0.001:1:STATS"])
    env = dict(environment(), nofile={"soft": 1024, "hard": 4096})
    limits = {"nofile_soft_before": 1024, "nofile_hard": 4096, "nofile_soft": 1024, "nofile_needed_per_worker": 34,
              "raise_error": None}
    doc = results.build(config=flags.config_of(args, 1), environment=env, workers=[report], failures=[],
                        warnings=[], t0=T0, wall0=1.7e9, ended=T0 + 0.01, wall_end=1.7e9 + 0.01,
                        cpu={"user_s": 0.1, "sys_s": 0.0, "workers_s": 0.1, "measured_s": 0.1,
                             "parent": {"user_s": 0.0, "sys_s": 0.0}}, limits=limits)
    doc["exit_code"] = 0
    return json.loads(json.dumps(doc))
