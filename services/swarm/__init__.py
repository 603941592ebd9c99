"""The swarm: the lab's client fan-out and load generator (see swarm.py).

Modules: swarm (CLI, limits, forking and merging), engine (one worker's
readiness loop), patterns (what clients send when), hist (mergeable
latency histograms), results (results.json, schema in SCHEMA.md).
"""
