"""Running things: one run's units on the engine, and what the run keeps.

    context.py   connecting to the engine (and sweeping up after dead lab processes)
    live.py      LiveRun: one run's network, units and volumes, removed whatever happens
    probe.py     Bench and Target: a fresh server, the client swarm against it
    images.py    the images the units run, made from Debian's packages
    tools.py     real clients (nc, curl, wrk, ...) in a container on the run's network
    rundir.py    run directories: run.json, logs, results, written whole or not at all
    runs.py      the runs on the engine: what status shows, down removes, logs reads
    up.py        `lab up`: a server and a swarm, left up until `lab down`

Everything that starts or stops a unit goes through lab/engine; what is read
from a unit is read through lab/measure.
"""
