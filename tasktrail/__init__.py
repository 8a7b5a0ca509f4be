"""tasktrail: an event-sourced task engine for long-running strategy executions."""

__version__ = "0.1.0"
