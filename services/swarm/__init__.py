"""The client swarm: the lab's client fan-out and load generator (see swarm.py).

Modules:

    swarm      the parent: forking the workers, merging their reports
    flags      the flags, checked, and the config they make
    host       the machine: descriptor limits, ports, the environment, the target
    worker     one worker's readiness loop over its share of the clients
    timers     what a worker has due when: deadlines with callbacks
    connect    connecting and reconnecting: the ramp, retries, handshakes
    transfer   reading and writing: the reply step, refills, back-pressure,
               scripted actions
    book       what is in flight and what each reply took (no sockets, no clock)
    fastpath   ping-pong's steady state in C (fastpath.c), and what it hands back
    report     a worker's end-of-run report to the parent (WorkerReport)
    conn       one connection (Conn), and a worker's share of the clients (Share)
    wire       the protocols it speaks: the line protocol's slow path, ioclient's codecs
    patterns   what clients send when
    results    results.json (schema in SCHEMA.md)

The histogram is ioschema.hist, shared with the lab.
"""
