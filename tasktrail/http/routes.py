"""Every API operation, once: the router and the OpenAPI document are both built from this."""

from __future__ import annotations

from tasktrail.http import api_strategies, api_tasks, operations, reads, stream
from tasktrail.http.models import (
    NO_NUL,
    Anything,
    CancelOut,
    Health,
    MetricCatalog,
    ProjectionsOut,
    Readiness,
    SessionIn,
    SessionOut,
    Strategy,
    StrategyCreate,
    StrategyList,
    StreamEventData,
    TaskAccepted,
    TaskHistory,
    TaskPage,
    TaskResponse,
    TaskSubmit,
)
from tasktrail.http.openapi import EventStream, Operation, Param

UUID_SCHEMA = {"type": "string", "format": "uuid"}
TEXT_SCHEMA = {"type": "string", "pattern": NO_NUL}
VERSION_SCHEMA = {"type": "integer", "minimum": 1, "maximum": reads.MAX_QUERY_INT}
TASK_ID = Param("task_id", "path", UUID_SCHEMA)
STRATEGY_ID = Param("strategy_id", "path", UUID_SCHEMA)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 200},
    "repeating a submission with the same key returns the same task",
)
CURSOR_PARAMS = (
    Param(
        "after",
        "query",
        {"type": "integer", "minimum": 0, "maximum": stream.MAX_CURSOR},
        "resume after this position",
    ),
    Param(
        "Last-Event-ID",
        "header",
        {"type": "string", "pattern": f"^[0-9]{{0,{len(str(stream.MAX_CURSOR))}}}$"},
        "resume after this position (empty: none); wins over after",
    ),
)
EVENTS = EventStream(StreamEventData)

OPERATIONS: tuple[Operation, ...] = (
    # -- strategies
    Operation(
        "GET",
        "/api/strategies",
        api_strategies.list_strategies,
        "List strategies",
        {200: StrategyList},
        tag="strategies",
    ),
    Operation(
        "POST",
        "/api/strategies",
        api_strategies.create_strategy,
        "Create a strategy",
        {201: Strategy},
        body=StrategyCreate,
        tag="strategies",
    ),
    Operation(
        "GET",
        "/api/strategies/{strategy_id}",
        api_strategies.get_strategy,
        "Get a strategy",
        {200: Strategy},
        params=(STRATEGY_ID,),
        tag="strategies",
    ),
    Operation(
        "POST",
        "/api/strategies/{strategy_id}/execute",
        api_strategies.execute_strategy,
        "Run a strategy in the background",
        {202: TaskAccepted},
        params=(STRATEGY_ID, IDEMPOTENCY_KEY),
        tag="strategies",
    ),
    Operation(
        "GET",
        "/api/metrics/catalog",
        api_strategies.metric_catalog,
        "Metrics and operators conditions may use",
        {200: MetricCatalog},
        tag="strategies",
    ),
    # -- tasks
    Operation(
        "POST",
        "/api/tasks",
        api_tasks.submit_task,
        "Submit a task of any registered kind",
        {202: TaskAccepted},
        body=TaskSubmit,
        params=(IDEMPOTENCY_KEY,),
        tag="tasks",
    ),
    Operation(
        "GET",
        "/api/tasks",
        api_tasks.list_tasks,
        "List tasks, newest first",
        {200: TaskPage},
        params=(
            Param(
                "status",
                schema={
                    "type": "string",
                    "enum": ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", ""],
                },
                description="empty or absent: every status",
            ),
            Param("kind", schema=TEXT_SCHEMA),
            Param("strategy_id", schema=TEXT_SCHEMA),
            Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 500}),
            Param("cursor", schema=TEXT_SCHEMA, description="next_cursor of the previous page"),
        ),
        tag="tasks",
    ),
    Operation(
        "GET",
        "/api/tasks/{task_id}",
        api_tasks.get_task,
        "Get a task",
        {200: TaskResponse},
        params=(TASK_ID, Param("at_version", schema=VERSION_SCHEMA)),
        tag="tasks",
    ),
    Operation(
        "POST",
        "/api/tasks/{task_id}/cancel",
        api_tasks.cancel_task,
        "Cancel a task",
        {200: CancelOut, 202: CancelOut},
        params=(TASK_ID,),
        tag="tasks",
    ),
    Operation(
        "GET",
        "/api/tasks/{task_id}/events",
        api_tasks.task_history,
        "A task's events with the state after each",
        {200: TaskHistory},
        params=(TASK_ID,),
        tag="tasks",
    ),
    Operation(
        "GET",
        "/api/tasks/{task_id}/result",
        api_tasks.task_result,
        "A completed task's result",
        {200: Anything},
        params=(TASK_ID,),
        tag="tasks",
    ),
    Operation(
        "POST",
        "/api/tasks/{task_id}/rerun",
        api_tasks.rerun_task,
        "Run a task again with the same parameters",
        {202: TaskAccepted},
        params=(TASK_ID, IDEMPOTENCY_KEY),
        tag="tasks",
    ),
    # -- streams
    Operation(
        "GET",
        "/api/stream",
        stream.stream_all,
        "Every event, live (SSE)",
        {200: EVENTS},
        params=CURSOR_PARAMS,
        tag="streams",
    ),
    Operation(
        "GET",
        "/api/tasks/{task_id}/stream",
        stream.stream_task,
        "One task's events (SSE)",
        {200: EVENTS, 204: None},
        params=(TASK_ID, *CURSOR_PARAMS),
        tag="streams",
    ),
    # -- operations
    Operation(
        "GET",
        "/api/admin/projections",
        operations.admin_projections,
        "Each projection's position and lag",
        {200: ProjectionsOut},
        tag="admin",
    ),
    Operation(
        "GET",
        "/api/session",
        operations.session_status,
        "Is a token needed, and held?",
        {200: SessionOut},
        tag="session",
        security=False,
    ),
    Operation(
        "POST",
        "/api/session",
        operations.sign_in,
        "Sign in: sets the session cookie",
        {200: SessionOut},
        body=SessionIn,
        tag="session",
        security=False,
    ),
    Operation(
        "GET",
        "/healthz",
        operations.healthz,
        "Liveness",
        {200: Health},
        tag="operations",
        security=False,
    ),
    Operation(
        "GET",
        "/readyz",
        operations.readyz,
        "Readiness: database and projection lag",
        {200: Readiness, 503: Readiness},
        tag="operations",
        security=False,
    ),
    Operation(
        "GET",
        "/metrics",
        operations.metrics,
        "Prometheus metrics",
        {200: "text/plain"},
        tag="operations",
        security=False,
    ),
)
