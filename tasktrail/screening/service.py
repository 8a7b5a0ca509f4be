"""StrategyService: create, change, read and run strategies (load -> command -> save).

A run records the strategy's full definition as it is at submission in the task's
parameters (``{"strategy_id", "strategy": {...}}``), so a later change never alters what an
old run did, and an auditor can replay it from its own events alone.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.errors import NotFoundError
from tasktrail.screening import conditions
from tasktrail.screening.conditions import parse_conditions
from tasktrail.screening.run import KIND
from tasktrail.screening.strategy import Strategy

EXAMPLES_NAMESPACE = uuid.UUID("0b5f6c4e-2a1d-4e7b-9c3f-5d6e7f8a9b0c")

EXAMPLES: tuple[dict[str, Any], ...] = (
    {
        "name": "Value",
        "description": "Cheap and profitable: P/E below 15 and ROE above 15 %.",
        "conditions": [
            {"metric": "pe", "operator": "<", "value": 15},
            {"metric": "roe", "operator": ">", "value": 15},
        ],
        "sort": {"metric": "roe", "descending": True},
        "limit": 50,
    },
    {
        "name": "Oversold",
        "description": "RSI(14) below 30: sold hard lately.",
        "conditions": [{"metric": "rsi_14", "operator": "<", "value": 30}],
        "sort": {"metric": "rsi_14", "descending": False},
        "limit": 50,
    },
    {
        "name": "Momentum",
        "description": "3-month (63-day) return above 20 % and the close above its SMA(50).",
        "conditions": [
            {"metric": "return_63d", "operator": ">", "value": 20},
            {"metric": "close", "operator": ">", "other": "sma_50"},
        ],
        "sort": {"metric": "return_63d", "descending": True},
        "limit": 50,
    },
)


class StrategyNotFoundError(NotFoundError):
    def __init__(self, strategy_id: object) -> None:
        super().__init__(f"no strategy with id {strategy_id}")


def example_id(name: str) -> UUID:
    return uuid.uuid5(EXAMPLES_NAMESPACE, name)


def parse_id(strategy_id: UUID | str) -> UUID:
    if isinstance(strategy_id, UUID):
        return strategy_id
    try:
        return UUID(str(strategy_id))
    except ValueError:
        raise StrategyNotFoundError(strategy_id) from None


class StrategyService:
    """The strategies' use cases."""

    def __init__(self, store: TaskStore, execution_service: ExecutionService) -> None:
        self.store = store
        self.executions = execution_service

    def create(self, definition: dict[str, Any], *, strategy_id: UUID | None = None) -> Strategy:
        """A new strategy; ValidationError (naming the field) before anything is recorded."""
        strategy = Strategy.define(strategy_id or uuid.uuid4(), definition)
        self.store.save(strategy)
        return strategy

    def update(self, strategy_id: UUID | str, definition: dict[str, Any]) -> Strategy:
        """Replace a strategy's definition; runs already submitted keep the old one."""
        for _ in range(10):
            strategy = self.get(strategy_id)
            strategy.redefine(definition)
            try:
                self.store.save(strategy)
            except IntegrityError:
                continue
            return strategy
        raise NotFoundError(f"strategy {strategy_id} kept changing")  # pragma: no cover

    def get(self, strategy_id: UUID | str) -> Strategy:
        try:
            found: object = self.store.repository.get(parse_id(strategy_id))
        except AggregateNotFoundError:
            raise StrategyNotFoundError(strategy_id) from None
        if not isinstance(found, Strategy):
            raise StrategyNotFoundError(strategy_id)
        return found

    def execute(
        self,
        strategy_id: UUID | str,
        *,
        submitted_by: str = "anonymous",
        idempotency_key: str | None = None,
    ) -> ExecutionTask:
        """Submit a run of the strategy as it is now; returns the PENDING task at once."""
        strategy = self.get(strategy_id)
        parameters = {"strategy_id": str(strategy.id), "strategy": strategy.definition}
        return self.executions.start_execution(
            KIND, parameters, submitted_by=submitted_by, idempotency_key=idempotency_key
        )

    def seed_examples(self) -> list[Strategy]:
        """Create the example strategies unless they exist (fixed ids: safe to repeat)."""
        seeded = []
        for example in EXAMPLES:
            strategy_id = example_id(str(example["name"]))
            try:
                seeded.append(self.get(strategy_id))
                continue
            except StrategyNotFoundError:
                pass
            try:
                seeded.append(self.create(dict(example), strategy_id=strategy_id))
            except IntegrityError:
                seeded.append(self.get(strategy_id))  # another process seeded it meanwhile
        return seeded

    def catalog(self) -> dict[str, Any]:
        """The metrics and operators conditions may use."""
        return conditions.catalog()


def strategy_response(strategy: Strategy) -> dict[str, Any]:
    """A strategy in the API's Strategy shape (docs/api.md)."""
    definition = strategy.definition
    return {
        "id": str(strategy.id),
        **definition,
        "conditions_text": [c.in_words() for c in parse_conditions(definition["conditions"])],
        "version": strategy.version,
        "created_at": strategy.created_on.isoformat(),
        "updated_at": strategy.modified_on.isoformat(),
    }


class StrategyApi:
    """What the HTTP layer calls (``http.api_strategies.StrategyUseCases``): dicts out."""

    def __init__(self, service: StrategyService) -> None:
        self.service = service

    def create(self, definition: dict[str, Any]) -> dict[str, Any]:
        return strategy_response(self.service.create(definition))

    def get(self, strategy_id: str) -> dict[str, Any]:
        return strategy_response(self.service.get(strategy_id))

    def execute(
        self, strategy_id: str, *, submitted_by: str, idempotency_key: str | None
    ) -> ExecutionTask:
        return self.service.execute(
            strategy_id, submitted_by=submitted_by, idempotency_key=idempotency_key
        )

    def catalog(self) -> dict[str, Any]:
        return self.service.catalog()
