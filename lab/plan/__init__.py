"""What is to be run, read from the lab's declarations before anything starts.

    compose.py     compose.yaml, read as Compose reads it, into UnitSpecs
    models.py      services/<name>/model.yaml: each target and what it promises
    scenarios.py   scenarios/*.yaml: the probes behind each check, and its judge
    commands.py    a command line with each flag once

Plain data and its validation: nothing here talks to an engine.
"""
