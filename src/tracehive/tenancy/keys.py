"""API key strings and permissions.

A key is ``thk_<id>_<secret>``: ``id`` is 12 lowercase base32 characters (public: it names the key
in ``keys list`` and ``/1/auth``), ``secret`` is 43 url-safe characters (256 random bits). Only the
SHA-256 of the secret is stored, so a leaked data directory does not leak usable keys; a fast hash
is enough because the secret is random, not a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

__all__ = [
    "ADMIN",
    "ALL_PERMISSIONS",
    "INGEST",
    "KEY_PREFIX",
    "QUERY",
    "InvalidPermission",
    "format_permissions",
    "generate_key",
    "hash_secret",
    "is_key_id",
    "parse_key",
    "parse_permissions",
    "secret_matches",
]

INGEST = "ingest"
QUERY = "query"
ADMIN = "admin"
ALL_PERMISSIONS: tuple[str, ...] = (INGEST, QUERY, ADMIN)  # also the display order

KEY_PREFIX = "thk_"
_KEY_ID = re.compile(r"[a-z2-7]{12}")
# The secret length is capped so a hostile header cannot make us hash megabytes per request.
_KEY = re.compile(r"thk_([a-z2-7]{12})_([A-Za-z0-9_-]{32,128})")


class InvalidPermission(ValueError):
    """A permission name that is not one of ``ALL_PERMISSIONS`` (or an empty set)."""


def generate_key() -> tuple[str, str, str]:
    """A new key: ``(key_string, key_id, secret_sha256_hex)``.

    Show the string once and store the rest; the secret itself is never kept.
    """
    key_id = base64.b32encode(secrets.token_bytes(8)).decode().lower()[:12]
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{key_id}_{secret}", key_id, hash_secret(secret)


def parse_key(text: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key string, else None (no legacy formats)."""
    m = _KEY.fullmatch(text.strip())
    return (m.group(1), m.group(2)) if m else None


def is_key_id(text: str) -> bool:
    """Whether ``text`` looks like a bare key id (what ``keys list`` shows)."""
    return _KEY_ID.fullmatch(text) is not None


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a key secret: the only form the catalog stores."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_sha256_hex: str) -> bool:
    """Constant-time comparison, so response timing does not reveal how much of a guess matched."""
    return hmac.compare_digest(hash_secret(secret), stored_sha256_hex)


def parse_permissions(value: str | Iterable[str]) -> frozenset[str]:
    """``"ingest,query"`` (or an iterable of names) -> frozenset; raises ``InvalidPermission``."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = {p.strip().lower() for p in parts if p.strip()}
    unknown = sorted(names - set(ALL_PERMISSIONS))
    choices = ", ".join(ALL_PERMISSIONS)
    if unknown:
        raise InvalidPermission(
            f"unknown permission(s): {', '.join(unknown)} (choose from {choices})"
        )
    if not names:
        raise InvalidPermission(f"no permissions given (choose from {choices})")
    return frozenset(names)


def format_permissions(permissions: Iterable[str]) -> str:
    """Canonical comma list, in ``ALL_PERMISSIONS`` order (how the catalog stores them)."""
    given = set(permissions)
    return ",".join(p for p in ALL_PERMISSIONS if p in given)
