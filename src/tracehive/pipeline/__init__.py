"""Accepted data's way to the store: admission (backpressure), the WAL (durable acknowledgement),
and the batch writer. See ``Pipeline``."""

from tracehive.pipeline.pipeline import Overloaded, Pipeline
from tracehive.pipeline.records import Prepared, Record

__all__ = ["Overloaded", "Pipeline", "Prepared", "Record"]
