"""Accepted data's way to the store: admission (backpressure), the WAL (durable acknowledgement),
and the batch writer. See ``Pipeline``."""

from tracehive.pipeline.pipeline import Overloaded, Pipeline
from tracehive.pipeline.records import Kind, Prepared, Record

__all__ = ["Kind", "Overloaded", "Pipeline", "Prepared", "Record"]
