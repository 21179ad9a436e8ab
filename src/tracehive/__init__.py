"""tracehive: self-hosted traces, logs, errors and metrics for Python services."""

__version__ = "0.1.0"
