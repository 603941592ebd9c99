"""I/O Models Lab: the host-side orchestrator (`lab`).

Layers, imports pointing down: cli -> verbs -> live (one run's topology),
checks/reports -> engine (the only module that talks to Docker), compose
(compose.yaml to SDK arguments), models (model.yaml), runs (run directories).
"""

__version__ = "0.1.0"
