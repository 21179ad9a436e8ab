"""Validation of dataset and environment names, and their slugs.

Datasets are case-insensitive (PROTOCOLS.md §7.2): the slug is the lower-cased name and the first
casing seen is kept for display. Environments are looked up by a URL-friendly slug, as in
Honeycomb's ``/1/auth`` response (``{"name": "Production", "slug": "production"}``).
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_DATASET_NAME",
    "MAX_ENVIRONMENT_NAME",
    "InvalidName",
    "dataset_slug",
    "environment_slug",
    "validate_dataset_name",
    "validate_environment_name",
]

MAX_DATASET_NAME = 255
MAX_ENVIRONMENT_NAME = 64

# C0 and C1 control characters (and DEL): never part of a name someone meant to type.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class InvalidName(ValueError):
    """A dataset or environment name that is empty, too long or has control characters."""


def _validate(name: object, what: str, max_len: int) -> str:
    if not isinstance(name, str):
        raise InvalidName(f"{what} name must be a string")
    clean = name.strip()
    if not clean:
        raise InvalidName(f"{what} name must not be empty")
    if len(clean) > max_len:
        raise InvalidName(f"{what} name is longer than {max_len} characters")
    if _CONTROL.search(clean):
        raise InvalidName(f"{what} name must not contain control characters")
    return clean


def validate_dataset_name(name: str) -> str:
    """The trimmed name, or ``InvalidName`` unless it is 1..255 characters without controls.

    The OTLP decoders apply this rule to ``service.name``: the Python ones through
    ``ingest/otlp/common.py``'s ``routable``, the C one by calling this function once per
    resource (``ingest/_otlp_fast.c``)."""
    return _validate(name, "dataset", MAX_DATASET_NAME)


def dataset_slug(name: str) -> str:
    """The case-insensitive identity of a dataset name (validated and lower-cased)."""
    return validate_dataset_name(name).lower()


def validate_environment_name(name: str) -> str:
    """The trimmed name, or ``InvalidName`` unless it is 1..64 characters with a slug."""
    clean = _validate(name, "environment", MAX_ENVIRONMENT_NAME)
    if not _NOT_SLUG.sub("", clean.lower()):
        raise InvalidName("environment name needs at least one ASCII letter or digit")
    return clean


def environment_slug(name: str) -> str:
    """``"My Prod"`` -> ``"my-prod"``: lower case, runs of other characters become one dash."""
    return _NOT_SLUG.sub("-", validate_environment_name(name).lower()).strip("-")
