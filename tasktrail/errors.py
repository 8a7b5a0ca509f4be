"""The one root of tasktrail's errors; the HTTP layer maps these classes to status codes."""

from __future__ import annotations


class TasktrailError(Exception):
    """Root of every error tasktrail raises on purpose."""


class NotFoundError(TasktrailError):
    """Something named by id does not exist."""


class ConflictError(TasktrailError):
    """The request is valid but clashes with the current state."""


class ValidationError(TasktrailError):
    """Input that names unknown things or breaks a rule; ``field`` says where."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigurationError(TasktrailError):
    """Settings that cannot work (a bad database URL, a public bind without a token)."""
