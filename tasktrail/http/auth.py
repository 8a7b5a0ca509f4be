"""API tokens: a Bearer header, or the session cookie that ``POST /api/session`` sets.

With ``settings.api_token`` set, every ``/api`` route except the session endpoints needs it;
``/api/admin/...`` needs ``settings.admin_token`` when that is set. The cookie holds an HMAC
of the token, never the token itself. Every comparison takes constant time.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tasktrail.http.problems import ForbiddenError, UnauthorizedError, problem_for
from tasktrail.settings import Settings

SESSION_COOKIE = "tasktrail_session"
OPEN_PATHS = frozenset({"/api/session"})


def session_value(token: str) -> str:
    """What the session cookie holds for ``token``."""
    return hmac.new(token.encode(), b"tasktrail-session", hashlib.sha256).hexdigest()


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def holds(connection: HTTPConnection, token: str) -> bool:
    """Does the request carry ``token`` (as a Bearer header or a session cookie)?"""
    return same(bearer(connection), token) or same(
        connection.cookies.get(SESSION_COOKIE), session_value(token)
    )


def signed_in(connection: HTTPConnection, settings: Settings) -> bool:
    tokens = [t for t in (settings.api_token, settings.admin_token) if t]
    return any(holds(connection, token) for token in tokens)


def check(connection: HTTPConnection, settings: Settings) -> None:
    """Raise 401/403 unless the request may use its path."""
    path = connection.url.path
    if not path.startswith("/api/") or path in OPEN_PATHS:
        return
    if path.startswith("/api/admin/") and settings.admin_token:
        if holds(connection, settings.admin_token):
            return
        if settings.api_token and holds(connection, settings.api_token):
            raise ForbiddenError("this endpoint needs the admin token")
        raise UnauthorizedError("this endpoint needs the admin token")
    if settings.api_token and not signed_in(connection, settings):
        raise UnauthorizedError("send the API token as 'Authorization: Bearer <token>'")


class TokenMiddleware:
    """Refuses ``/api`` requests (streams included) that lack the token, before routing."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                check(HTTPConnection(scope), self.settings)
            except (UnauthorizedError, ForbiddenError) as error:
                await problem_for(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
