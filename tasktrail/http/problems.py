"""Errors as ``application/problem+json`` (RFC 9457), with the status chosen in ONE table.

Endpoints raise tasktrail errors (or the HTTP-only ones below); the handlers here turn
them into problem documents. Anything unexpected becomes a 500 problem without details.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from tasktrail.engine.task import InvalidTaskStateError
from tasktrail.errors import ConflictError, NotFoundError, TasktrailError, ValidationError

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
PROBLEM_BASE = "https://tasktrail.dev/problems/"


class BadRequestError(ValidationError):
    """Input that cannot even be parsed: malformed JSON, a garbled cursor or Last-Event-ID."""


class PayloadTooLargeError(TasktrailError):
    """A request body over ``settings.max_body_bytes``."""


class UnsupportedMediaTypeError(TasktrailError):
    """A body that is not ``application/json``."""


class UnauthorizedError(TasktrailError):
    """A missing or wrong API token."""


class ForbiddenError(TasktrailError):
    """A valid API token where the admin token is needed."""


class RequestValidationError(ValidationError):
    """A body or query that parsed but breaks the schema; ``errors`` names each field."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message, field=errors[0]["field"] if errors else None)
        self.errors = errors


# The one table from error class to (status, slug, title). Order matters: first match wins,
# so subclasses come before their bases.
STATUS_TABLE: tuple[tuple[type[Exception], int, str, str], ...] = (
    (BadRequestError, 400, "bad-request", "Bad request"),
    (UnauthorizedError, 401, "unauthorized", "Unauthorized"),
    (ForbiddenError, 403, "forbidden", "Forbidden"),
    (NotFoundError, 404, "not-found", "Not found"),
    (InvalidTaskStateError, 409, "invalid-task-state", "Invalid task state"),
    (ConflictError, 409, "conflict", "Conflict"),
    (PayloadTooLargeError, 413, "payload-too-large", "Payload too large"),
    (UnsupportedMediaTypeError, 415, "unsupported-media-type", "Unsupported media type"),
    (ValidationError, 422, "validation", "Validation failed"),
)


def classify(error: Exception) -> tuple[int, str, str]:
    """(status, slug, title) for an error, from ``STATUS_TABLE``; 500 for anything else."""
    for error_class, status, slug, title in STATUS_TABLE:
        if isinstance(error, error_class):
            return status, slug, title
    return 500, "internal", "Internal server error"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(json.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def problem_for(error: Exception) -> Response:
    status, slug, title = classify(error)
    if status == 500:
        log.exception("unhandled error", exc_info=error)
        return problem(500, title, "the server failed to answer; see its log", slug=slug)
    errors = getattr(error, "errors", None)
    if errors is None and isinstance(error, ValidationError) and error.field and status == 422:
        errors = [{"field": error.field, "message": str(error)}]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem(status, title, str(error), slug=slug, errors=errors, headers=headers)


async def tasktrail_error_handler(_request: Request, error: Exception) -> Response:
    return problem_for(error)


async def http_exception_handler(_request: Request, error: Exception) -> Response:
    """Starlette's own 404/405 (unknown route, wrong method) as problems too."""
    assert isinstance(error, HTTPException)
    headers = dict(error.headers) if error.headers else None
    title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "HTTP error")
    return problem(error.status_code, title, str(error.detail), headers=headers)


async def unexpected_error_handler(_request: Request, error: Exception) -> Response:
    return problem_for(error)
