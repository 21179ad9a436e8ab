"""Reading and checking API keys: one place for every HTTP surface.

Keys come in ``x-honeycomb-team`` (Honeycomb's header, what OTLP exporters send) or
``Authorization: Bearer <key>``. Each surface renders the failures in its own error shape; this
module only decides which failure it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from tracehive.services import Services
    from tracehive.tenancy.catalog import KeyInfo


class AuthFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


MISSING = "missing API key: send it in the x-honeycomb-team header"
UNKNOWN = "unknown API key - check your credentials"


def presented_key(headers) -> str | None:
    key = headers.get("x-honeycomb-team")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def authenticate(services: Services, headers, permission: str | None) -> KeyInfo:
    """The key's info, or ``AuthFailure`` (401 missing/unknown, 403 lacking ``permission``)."""
    key = presented_key(headers)
    if not key:
        raise AuthFailure(401, MISSING)
    info = services.catalog.authenticate(key)
    if info is None:
        raise AuthFailure(401, UNKNOWN)
    if permission is not None and not info.allows(permission):
        raise AuthFailure(403, f"this API key does not have the '{permission}' permission")
    return info


def require(services: Services, request: Request, permission: str | None) -> KeyInfo:
    return authenticate(services, request.headers, permission)
