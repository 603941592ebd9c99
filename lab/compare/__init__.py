"""lab compare's library: the same workloads against every target, side by side.

    session.py    from start to end: the plan, every model's repeats, the
                  classifications and checks beside them, then the report
    plan.py       what will run: the targets in order, each one's command (Plan)
    workloads.py  the workloads: one row each (WORKLOADS)
    repeat.py     one model, one repeat: a fresh server, each swarm workload
                  against it, read as lab/measure reads
    scenario.py   a scenario's workload (c10k), measured as `lab check` measures it
    wrk.py        wrk beside the swarm, from a tools container

What is kept of each measurement, and in which shape, is lab/report/results.py's.
"""
