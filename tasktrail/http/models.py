"""The API's request and response models (pydantic): validation and the OpenAPI schemas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskStatusName = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
# Any text but NUL, which PostgreSQL cannot store (the body reader refuses it everywhere).
NO_NUL = r"^[^\x00]*$"
# ...and not blank: one character that no regex dialect nor str.strip() takes for a space.
NOT_BLANK = r"^[^\x00]*[^\s\x00-\x1f\x85][^\x00]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ---------------------------------------------------------------------------------


class UniverseIn(Strict):
    provider: Literal["sample", "csv"] = "sample"
    path: str | None = Field(default=None, max_length=500, pattern=NO_NUL)


class ConditionIn(Strict):
    metric: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    operator: str = Field(min_length=1, max_length=4, pattern=NO_NUL)
    value: float | None = None
    other: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL)


class SortIn(Strict):
    metric: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    descending: bool = True


class StrategyCreate(Strict):
    """A new strategy: which universe, which conditions, how to sort, how many rows."""

    name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)
    description: str = Field(default="", max_length=2000, pattern=NO_NUL)
    universe: UniverseIn = Field(default_factory=UniverseIn)
    conditions: list[ConditionIn] = Field(min_length=1, max_length=50)
    sort: SortIn | None = None
    limit: int | None = Field(default=None, ge=1, le=10_000)


class TaskSubmit(Strict):
    """A task of any registered kind."""

    kind: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    parameters: dict[str, Any] = Field(default_factory=dict)


class SessionIn(Strict):
    token: str = Field(min_length=1, max_length=1000, pattern=NO_NUL)


# -- responses --------------------------------------------------------------------------------


class ProgressOut(BaseModel):
    current: int
    total: int
    percent: int
    phase: str
    message: str


class TaskErrorOut(BaseModel):
    type: str | None
    message: str | None
    retryable: bool | None = None
    reason: str | None = None


class ResultSummaryOut(BaseModel):
    matched: int | None
    scanned: int | None


class TaskResponse(BaseModel):
    """A task as the list and detail pages show it."""

    id: str
    kind: str
    status: TaskStatusName
    strategy_id: str | None
    strategy_name: str | None
    progress: ProgressOut
    submitted_at: str | None
    started_at: str | None
    finished_at: str | None
    worker_id: str | None
    attempt: int
    cancel_requested: bool
    error: TaskErrorOut | None
    result_summary: ResultSummaryOut | None
    rerun_of: str | None
    version: int
    position: int | None


class StreamEventData(BaseModel):
    """One SSE event's data: the event, and the task's state right after it."""

    position: int
    task_id: str
    version: int
    type: str
    timestamp: str
    data: dict[str, Any]
    task: TaskResponse | None


class TaskLinks(BaseModel):
    self: str
    events: str
    stream: str
    cancel: str
    result: str
    page: str


class TaskAccepted(BaseModel):
    """The answer to a submission: 202, the task's id and where to follow it."""

    task_id: str
    status: TaskStatusName
    links: TaskLinks


class TaskPage(BaseModel):
    items: list[TaskResponse]
    next_cursor: str | None
    position: int
    counts: dict[str, int]


class CancelOut(BaseModel):
    task_id: str
    outcome: Literal["requested", "cancelled", "already_requested", "already_cancelled"]


class HistoryStep(BaseModel):
    position: int | None
    version: int
    type: str
    timestamp: str
    data: dict[str, Any]
    digest: str
    state: dict[str, Any]


class TaskHistory(BaseModel):
    task_id: str
    events: list[HistoryStep]
    verified: bool


class Strategy(BaseModel):
    id: str
    name: str
    description: str | None = None
    universe: dict[str, Any] | None = None
    conditions: list[dict[str, Any]]
    conditions_text: list[str] = Field(default_factory=list)
    sort: dict[str, Any] | None = None
    limit: int | None = None
    version: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class StrategyList(BaseModel):
    items: list[Strategy]
    position: int


class MetricOut(BaseModel):
    name: str
    label: str
    kind: str


class MetricCatalog(BaseModel):
    metrics: list[MetricOut]
    operators: list[str]


class ProjectionOut(BaseModel):
    name: str
    position: int
    head: int
    lag: int


class ProjectionsOut(BaseModel):
    projections: list[ProjectionOut]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    database: bool
    lag: int | None


class SessionOut(BaseModel):
    auth_required: bool
    signed_in: bool


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Anything(BaseModel):
    """A free-form JSON object (a task's result)."""

    model_config = ConfigDict(extra="allow")
