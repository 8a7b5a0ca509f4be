"""The Strategy aggregate: a screening definition, every change an event with the whole of it.

Events (docs/design.md R3): ``strategy.created`` and ``strategy.updated``, each carrying the
full definition (name, description, universe, conditions, sort, limit), so the strategy view
and an auditor never need to fold partial changes. ``normalize`` checks a definition and
gives it its canonical form before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from tasktrail.errors import ValidationError
from tasktrail.screening.conditions import parse_conditions, parse_metric

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
PROVIDERS = ("sample", "csv")


class Strategy(Aggregate):
    """A named screen over a universe: conditions, a sort metric and a limit."""

    TOPIC: ClassVar[str] = "strategy"

    class Event(Aggregate.Event):
        TOPIC: ClassVar[str] = "strategy.event"

    class Created(Event, Aggregate.Created):
        TOPIC: ClassVar[str] = "strategy.created"
        name: str
        description: str
        universe: dict[str, Any]
        conditions: list[dict[str, Any]]
        sort: dict[str, Any] | None
        limit: int

    class Updated(Event):
        TOPIC: ClassVar[str] = "strategy.updated"
        name: str
        description: str
        universe: dict[str, Any]
        conditions: list[dict[str, Any]]
        sort: dict[str, Any] | None
        limit: int

        def apply(self, strategy: Strategy) -> None:
            strategy._take(vars(self))

    def __init__(
        self,
        name: str,
        description: str,
        universe: dict[str, Any],
        conditions: list[dict[str, Any]],
        sort: dict[str, Any] | None,
        limit: int,
    ) -> None:
        self.name = name
        self.description = description
        self.universe = universe
        self.conditions = conditions
        self.sort = sort
        self.limit = limit

    @classmethod
    def define(cls, strategy_id: UUID, definition: Mapping[str, Any]) -> Strategy:
        """A new strategy from a definition (checked and normalised first)."""
        return cls._create(cls.Created, id=strategy_id, **normalize(definition))

    def redefine(self, definition: Mapping[str, Any]) -> None:
        """Replace the whole definition (checked first); records nothing if it is the same."""
        normalized = normalize(definition)
        if normalized != self.definition:
            self.trigger_event(self.Updated, **normalized)

    def _take(self, values: Mapping[str, Any]) -> None:
        for name in ("name", "description", "universe", "conditions", "sort", "limit"):
            setattr(self, name, values[name])

    @property
    def definition(self) -> dict[str, Any]:
        """The full definition, as recorded and as a run's parameters carry it."""
        return {
            "name": self.name,
            "description": self.description,
            "universe": self.universe,
            "conditions": self.conditions,
            "sort": self.sort,
            "limit": self.limit,
        }


def normalize(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical definition; ValidationError with ``field`` on the first problem."""
    if not isinstance(definition, Mapping):
        raise ValidationError("a strategy definition is an object")
    name = definition.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("a strategy needs a name", field="name")
    description = definition.get("description") or ""
    if not isinstance(description, str):
        raise ValidationError("description is text", field="description")
    conditions = [c.as_dict() for c in parse_conditions(definition.get("conditions"))]
    return {
        "name": name.strip(),
        "description": description,
        "universe": _universe(definition.get("universe")),
        "conditions": conditions,
        "sort": _sort(definition.get("sort")),
        "limit": _limit(definition.get("limit")),
    }


def _universe(raw: object) -> dict[str, Any]:
    if raw is None:
        return {"provider": "sample"}
    if not isinstance(raw, Mapping):
        raise ValidationError("universe is an object with a provider", field="universe")
    provider = raw.get("provider", "sample")
    if provider not in PROVIDERS:
        raise ValidationError(
            f"unknown universe provider {provider!r}; known: {', '.join(PROVIDERS)}",
            field="universe.provider",
        )
    if provider == "csv":
        path = raw.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ValidationError("a csv universe needs a path", field="universe.path")
        return {"provider": "csv", "path": path}
    return {"provider": "sample"}


def _sort(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValidationError("sort is an object with a metric", field="sort")
    metric = parse_metric(raw.get("metric"), "sort.metric")
    descending = raw.get("descending", True)
    if not isinstance(descending, bool):
        raise ValidationError("descending is true or false", field="sort.descending")
    return {"metric": metric.name, "descending": descending}


def _limit(raw: object) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LIMIT:
        raise ValidationError(f"limit is a whole number from 1 to {MAX_LIMIT}", field="limit")
    return raw
