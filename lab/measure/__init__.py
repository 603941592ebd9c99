"""Reading what ran from the outside: CPU, memory, processes, sockets, traces.

Every figure the lab reports about a server (`lab check`, `lab run`, `lab
compare`, `lab classify`) is read here, one way each, whoever asks:

    cgroup.py       a unit's cgroup: CPU time and memory (Cgroup, Cpu), CPU over a window
    procs.py        the model's processes: PSS/USS/RSS, threads, the process table, the listen queue
    sampler.py      readings over a swarm's run: in the background, or at set points (remote)
    host.py         what the host could give: its free cores from /proc/stat, ours left out
    reach.py        the socket table: listening, connections still open; the swarm's flags
                    for a target's protocol
    events.py       a unit's JSON-line trace, followed, with bounded waits
    merge.py        the client swarm's replicas, merged into one results document
    analysis.py     figures out of traces and the swarm's results (pure functions)
    environment.py  the machines a run was measured on

A unit is a lab.engine.Unit: a container, or a Swarm-mode service's task.
These modules parse and do the arithmetic; the unit says where the figures
are.  Where a reading comes from, best first:

    host    the unit runs on this machine: its own cgroup files and its
            processes' /proc files, read here.  A few milliseconds,
            nothing runs in the container (so nothing is charged to it), and
            stamped on CLOCK_MONOTONIC, the clock the containers' events use.
    exec    another machine: one short `docker exec` (cat or grep, never a
            Python start-up) per reading; the exec's own processes are left
            out of every count, its few ms of CPU are not.
    stats   the engine's stats API, when neither works: free for the
            container, but a reading can take a second, so it is dated by
            the engine's own stamp.

Nothing here starts or stops a unit: that is lab/run's, through lab/engine.
"""
