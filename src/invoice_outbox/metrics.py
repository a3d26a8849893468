"""Prometheus metrics: delivery counters kept in-process, queue gauges read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CIRCUIT_VALUES = {"Healthy": 0, "Degraded": 1, "Down": 2}


class DeliveryMetrics:
    """What workers in this process did: deliveries by system and outcome, attempt durations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "invoice_outbox_deliveries",
            "Delivery attempts by system and outcome",
            ["system", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "invoice_outbox_attempt_duration_seconds",
            "How long delivery attempts took",
            ["system"],
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

    def observe(self, system: str, outcome: str, seconds: float) -> None:
        self.deliveries.labels(system=system, outcome=outcome).inc()
        self.duration.labels(system=system).observe(seconds)


class QueueSnapshot:
    """Gauges read from the database just before a scrape (set by the /metrics route)."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        self.oldest_due: datetime | None = None
        self.circuits: dict[str, str] = {}
        self.now: datetime | None = None


class QueueCollector(Collector):
    """Exposes a `QueueSnapshot` as Prometheus gauges."""

    def __init__(self, snapshot: QueueSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot
        sendings = GaugeMetricFamily(
            "invoice_outbox_sendings", "Sendings by status", labels=["status"]
        )
        for status, count in sorted(snap.by_status.items()):
            sendings.add_metric([status], count)
        yield sendings
        age = 0.0
        if snap.oldest_due is not None and snap.now is not None:
            age = max(0.0, (snap.now - snap.oldest_due).total_seconds())
        yield GaugeMetricFamily(
            "invoice_outbox_oldest_due_age_seconds",
            "Age of the oldest sending that is due and not yet attempted",
            value=age,
        )
        circuit = GaugeMetricFamily(
            "invoice_outbox_system_circuit",
            "System health: 0 healthy, 1 degraded, 2 down",
            labels=["system"],
        )
        for system, state in sorted(snap.circuits.items()):
            circuit.add_metric([system], CIRCUIT_VALUES.get(state, 0))
        yield circuit


class Metrics:
    """The process's registry with every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.delivery = DeliveryMetrics(self.registry)
        self.queue = QueueSnapshot()
        self.registry.register(QueueCollector(self.queue))
