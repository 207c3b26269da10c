"""drml-ray: distributed deep reinforcement meta-learning on Ray."""

__version__ = "0.1.0"
