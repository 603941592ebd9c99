"""Classification: what a server does, observed from outside, and what it must therefore be.

    probes.py     the bounded probes, into an Observation
    classify.py   the inference: an Observation into a Classification, with its evidence

model.yaml is never an input here: a target's declaration is only what an
inference is held against.
"""
