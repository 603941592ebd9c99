"""I/O Models Lab: the host-side orchestrator (`lab`).

Layers, imports pointing down: cli -> verbs -> live (one run's topology),
checks, classify and report -> engine (lab/engine/, the only package that
talks to Docker: containers on one engine, or Swarm services) -> compose
(compose.yaml to unit specs), models (model.yaml), runs (run directories).
"""

__version__ = "0.1.0"
