"""One frozen Settings object, built from the environment and CLI flags and passed down.

No other module reads ``os.environ``: flags override ``TASKTRAIL_*`` variables, which
override the defaults below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasktrail.errors import ConfigurationError

ENV_PREFIX = "TASKTRAIL_"
DEFAULT_DATABASE_URL = "sqlite:///tasktrail.db"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, in one place."""

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 4
    # serve: run the workers in this many ``tasktrail worker`` children instead of threads.
    worker_processes: int = 0
    api_token: str | None = None
    admin_token: str | None = None
    max_body_bytes: int = 64 * 1024
    # Workers heartbeat every lease/3 seconds; a task whose worker missed its lease fails.
    lease_seconds: float = 10.0
    # Progress events are coalesced: at most one per task every interval (or 1 %).
    progress_interval_seconds: float = 0.2
    poll_seconds: float = 0.1
    sse_ping_seconds: float = 15.0
    sse_retry_ms: int = 2000
    sse_max_connection_seconds: float = 3600.0
    sse_ring_size: int = 10_000
    sse_queue_size: int = 1_000
    readiness_max_lag: int = 1_000
    universe_batch_delay_seconds: float = 0.05
    csv_root: str | None = None
    retention_days: int = 30
    archive_dir: str = "archives"
    seed_examples: bool = True
    log_level: str = "info"
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql", "postgres"))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file named by ``sqlite:///relative`` or ``sqlite:////absolute``."""
        if not self.is_sqlite:
            raise ConfigurationError(f"not an SQLite URL: {self.database_url}")
        return Path(self.database_url.removeprefix("sqlite:///"))

    def environment(self) -> dict[str, str]:
        """These settings as the ``TASKTRAIL_*`` variables ``from_env`` reads back (for a
        child process); unset optional ones are left out."""
        variables = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "extra":
                continue
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            variables[ENV_PREFIX + f.name.upper()] = text
        return variables

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; ``None`` values leave a field as it was."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from ``TASKTRAIL_*`` variables, then ``overrides`` (CLI flags) on top."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None or f.name == "extra":
                continue
            values[f.name] = _parse(f.name, str(f.type), raw)
        settings = cls(**values)
        settings = settings.replace(**overrides)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not (self.is_sqlite or self.is_postgres):
            raise ConfigurationError(
                f"unsupported database URL {self.database_url!r}: "
                "use sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
            )
        if self.workers < 0:
            raise ConfigurationError("workers must be 0 or more")
        if self.worker_processes < 0:
            raise ConfigurationError("worker_processes must be 0 or more")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be between 0 and 65535, not {self.port}")
        for name in _POSITIVE:
            value = getattr(self, name)
            if not value > 0:  # also rejects NaN
                raise ConfigurationError(f"{name} must be positive, not {value!r}")
        for name in _NON_NEGATIVE:
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigurationError(f"{name} must be 0 or more, not {value!r}")


_POSITIVE = (
    "max_body_bytes",
    "lease_seconds",
    "poll_seconds",
    "sse_ping_seconds",
    "sse_retry_ms",
    "sse_max_connection_seconds",
    "sse_ring_size",
    "sse_queue_size",
    "readiness_max_lag",
)
_NON_NEGATIVE = ("progress_interval_seconds", "universe_batch_delay_seconds", "retention_days")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _parse(name: str, type_name: str, raw: str) -> Any:
    try:
        if "bool" in type_name:
            word = raw.strip().lower()
            if word not in _TRUE + _FALSE:
                raise ValueError(word)
            return word in _TRUE
        if type_name.startswith("int"):
            return int(raw)
        if type_name.startswith("float"):
            return float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a {type_name}"
        ) from None
    return raw
