"""I/O Models Lab: the host-side orchestrator (`lab`).

Imports point down, along the data's way:

    cli.py, verbs/   one verb per module: parse its flags, call one library function, print
    tour/            lab tour: the article's steps as live experiments, judged by checks/
    watch/           the live view (lab watch, and the tour's): who is served, from events
    compare/ bench/  lab compare's and lab bench's runs from start to end
    checks/          the behaviour checks: probes, judges, verdicts (and lab check, lab run)
    observe/         classification: what a server does, observed, and what it must be
    run/             one run's units on the engine (LiveRun), the probing swarm (Bench),
                     images, real clients, run directories, the runs on the engine
    measure/         readings from outside: cgroups, /proc, sockets, traces, host load
    plan/            the declarations: compose.yaml, model.yaml, scenarios
    engine/          the boundary with the orchestrator: every Docker SDK call is there
    report/          the compare report, from a run directory alone
    errors, console, config, yamlfile   the ground every layer stands on
"""

__version__ = "0.1.0"
