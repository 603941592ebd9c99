"""lab bench's library: the lab's own speed and scale, measured.

    session.py     one run, the parts asked for, bench.json
    speed.py       `lab up` and `lab tour` timed; the swarm's throughput and 10,000 connections
    calibrate.py   the swarm against the ruler (the native client and server) and
                   CPython's floor, in alternating rounds; the ratios against their goals
"""
