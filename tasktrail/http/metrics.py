"""Prometheus metrics, in a registry of this app's own (two apps in one process never clash)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tasktrail.http.hub import Hub

# Commit-to-hub delay: from the event's timestamp to the moment the hub publishes it.
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Snapshot:
    """Figures read from the database when /metrics is scraped."""

    tasks_by_status: Mapping[str, int] = field(default_factory=dict)
    lag_by_projection: Mapping[str, int] = field(default_factory=dict)
    head: int = 0


class TasktrailCollector(Collector):
    """Gauges and counters taken from the hub and the latest snapshot."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Any]:
        tasks = GaugeMetricFamily("tasktrail_tasks", "Tasks by status", labels=["status"])
        for status, count in sorted(self.snapshot.tasks_by_status.items()):
            tasks.add_metric([status], count)
        yield tasks
        lag = GaugeMetricFamily(
            "tasktrail_projection_lag_events", "Events not yet applied", labels=["projection"]
        )
        for name, value in sorted(self.snapshot.lag_by_projection.items()):
            lag.add_metric([name], value)
        yield lag
        yield GaugeMetricFamily(
            "tasktrail_log_head_position", "Newest position in the log", value=self.snapshot.head
        )
        yield CounterMetricFamily(
            "tasktrail_events_appended",
            "Events appended to the log (seen by this process since start)",
            value=self.hub.delivered,
        )
        yield GaugeMetricFamily("tasktrail_sse_clients", "Open SSE streams", value=self.hub.clients)


class Metrics:
    """This app's registry and instruments."""

    def __init__(self, hub: Hub) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.collector = TasktrailCollector(hub)
        self.registry.register(self.collector)
        self.append_latency = Histogram(
            "tasktrail_event_append_latency_seconds",
            "From an event's commit timestamp to its delivery by the outbox follower",
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        hub.on_delivery = self.append_latency.observe

    def render(self, snapshot: Snapshot) -> bytes:
        self.collector.snapshot = snapshot
        return generate_latest(self.registry)
