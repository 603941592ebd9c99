"""The swarm: the lab's client fan-out and load generator (see swarm.py).

Modules: swarm (CLI, limits, forking and merging), engine (one worker's
readiness loop: sockets, timers, the fast path), book (what is in flight
and what each reply took: no sockets, no clock), wire (the protocols it
speaks: the line protocol's slow path, ioclient's codecs for the others),
patterns (what clients send when), hist (mergeable latency histograms),
results (results.json, schema in SCHEMA.md).
"""
