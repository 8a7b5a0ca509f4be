"""Reading request bodies safely: content type, size limit while streaming, JSON, schema.

The limit is enforced on the bytes actually received, so a missing or lying Content-Length
cannot smuggle a large body past it.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic
from starlette.requests import ClientDisconnect, Request

from tasktrail.http.problems import (
    BadRequestError,
    PayloadTooLargeError,
    RequestValidationError,
    UnsupportedMediaTypeError,
)

Model = TypeVar("Model", bound=pydantic.BaseModel)
NUL = "\x00"
NUL_MESSAGE = "text must not contain NUL characters"


def require_json_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"send the body as application/json, not {media_type or 'no content type'}"
        )


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as more than ``limit`` bytes arrive."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"request body is over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequestError("the client went away while sending the body") from None
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    """The JSON body (content type checked, size limited); 400 when it does not parse."""
    require_json_content_type(request)
    raw = await read_limited(request, limit)
    if not raw.strip():
        raise BadRequestError("the request body is empty; send a JSON object")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequestError(f"malformed JSON: {error}") from None
    refuse_nul(value)
    return value


def refuse_nul(value: Any, field: str = "body") -> None:
    """422 for a NUL character in any string or key: PostgreSQL text cannot hold one, and
    one accepted here would stop the projection that stores it."""
    if isinstance(value, str):
        if NUL in value:
            raise RequestValidationError(NUL_MESSAGE, [{"field": field, "message": NUL_MESSAGE}])
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key, field)
            refuse_nul(item, _child(field, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            refuse_nul(item, _child(field, str(index)))


def _child(field: str, name: str) -> str:
    return name if field == "body" else f"{field}.{name}"


async def read_model(request: Request, model: type[Model], limit: int) -> Model:
    """The body parsed into ``model``; 422 naming each bad field."""
    return validate(model, await read_json(request, limit))


def validate(model: type[Model], value: Any) -> Model:
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as error:
        errors = field_errors(error)
        raise RequestValidationError("the request does not match its schema", errors) from None


def field_errors(error: pydantic.ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as ``{"field": "conditions.0.metric", "message": ...}``."""
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False)
    ]
