"""Routes declared once, with what OpenAPI needs; both the router and the document come from it.

Because ``/api/openapi.json`` is generated from the same ``Operation`` list that builds the
Starlette routes, the document cannot describe an endpoint that does not exist or miss one
that does (a test checks this against the app's routes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tasktrail import __version__
from tasktrail.http.models import Problem
from tasktrail.http.problems import PROBLEM_TYPE

Endpoint = Callable[[Request], Awaitable[Response]]
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class EventStream:
    """A ``text/event-stream`` response whose every event carries ``data`` as JSON ``model``."""

    data: type[BaseModel]


# A response: a model (JSON), an event stream, a media type (a string body), or None (no body).
ResponseSpec = type[BaseModel] | EventStream | str | None


@dataclass(frozen=True)
class Param:
    """A query, path or header parameter."""

    name: str
    where: str = "query"
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    description: str = ""
    required: bool = False

    def as_openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "schema": dict(self.schema),
            "description": self.description,
        }


@dataclass(frozen=True)
class Operation:
    """One method on one path, with its documentation."""

    method: str
    path: str
    endpoint: Endpoint
    summary: str
    responses: Mapping[int, ResponseSpec]
    body: type[BaseModel] | None = None
    params: Sequence[Param] = ()
    tag: str = "api"
    security: bool = True


def routes(operations: Iterable[Operation]) -> list[Route]:
    """One Starlette route per path, dispatching on the method (so 405 names every allowed one)."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for operation in operations:
        by_path.setdefault(operation.path, {})[operation.method.upper()] = operation.endpoint
    return [
        Route(path, _dispatcher(methods), methods=list(methods))
        for path, methods in by_path.items()
    ]


def _dispatcher(methods: Mapping[str, Endpoint]) -> Endpoint:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await methods[method](request)

    return dispatch


def document(operations: Sequence[Operation], *, secured: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    models = _models(operations)
    _, schemas = models_json_schema(
        [(m, "validation" if _is_request(m, operations) else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, secured
        )
    components: dict[str, Any] = {"schemas": schemas.get("$defs", {})}
    if secured:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tasktrail", "version": __version__},
        "paths": paths,
        "components": components,
    }


def _is_request(model: type[BaseModel], operations: Sequence[Operation]) -> bool:
    return any(o.body is model for o in operations)


def _models(operations: Sequence[Operation]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [Problem]
    for operation in operations:
        candidates = [operation.body, *operation.responses.values()]
        for candidate in candidates:
            spec = candidate.data if isinstance(candidate, EventStream) else candidate
            if isinstance(spec, type) and issubclass(spec, BaseModel) and spec not in found:
                found.append(spec)
    return found


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _response(spec: ResponseSpec) -> dict[str, Any]:
    if spec is None:
        return {"description": "no content"}
    if isinstance(spec, EventStream):
        content = {EVENT_STREAM: {"schema": _event_schema(spec.data)}}
        return {"description": f"server-sent events, each {spec.data.__name__}", "content": content}
    if isinstance(spec, str):
        return {"description": spec, "content": {spec: {"schema": {"type": "string"}}}}
    return {
        "description": spec.__doc__.strip().splitlines()[0] if spec.__doc__ else spec.__name__,
        "content": {"application/json": {"schema": _ref(spec)}},
    }


def _event_schema(model: type[BaseModel]) -> dict[str, Any]:
    """One event of the stream (OpenAPI 3.1 reads a stream's ``schema`` as each event's)."""
    return {
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the position"},
            "event": {"type": "string", "description": "the event type"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref(model),
            },
        },
    }


def _operation(operation: Operation, secured: bool) -> dict[str, Any]:
    responses = {str(status): _response(spec) for status, spec in operation.responses.items()}
    responses["default"] = {
        "description": "an error (problem details)",
        "content": {PROBLEM_TYPE: {"schema": _ref(Problem)}},
    }
    document: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": f"{operation.method.lower()}_{_slug(operation.path)}",
        "tags": [operation.tag],
        "parameters": [p.as_openapi() for p in operation.params],
        "responses": responses,
    }
    if operation.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(operation.body)}},
        }
    if secured and operation.security:
        document["security"] = [{"bearer": []}]
    return document


def _slug(path: str) -> str:
    return "_".join(p.strip("{}") for p in path.strip("/").split("/") if p) or "root"
