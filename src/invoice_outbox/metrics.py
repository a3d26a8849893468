"""Prometheus metrics: delivery counters kept in-process, queue gauges read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
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

        self.last_turn = Gauge(
            "invoice_outbox_worker_last_success_timestamp_seconds",
            "When this process's worker last finished a turn of its loop without an error "
            "(Unix time; stale while it cannot reach its database)",
            registry=registry,
        )
        self.turn_errors = Counter(
            "invoice_outbox_worker_errors",
            "Turns of this process's worker loop that failed (and were retried)",
            registry=registry,
        )

    def observe(self, system: str, outcome: str, seconds: float) -> None:
        self.deliveries.labels(system=system, outcome=outcome).inc()
        self.duration.labels(system=system).observe(seconds)

    def loop_succeeded(self, now: datetime) -> None:
        self.last_turn.set(now.timestamp())

    def loop_failed(self) -> None:
        self.turn_errors.inc()


class QueueSnapshot:
    """Gauges read from the database just before a scrape (set by the /metrics route)."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        #: The oldest due sending of a system that is not held (one that could be delivered).
        self.oldest_due: datetime | None = None
        self.circuits: dict[str, str] = {}
        #: Held sendings by (system, reason): ``disabled`` or ``down``.
        self.held: dict[tuple[str, str], int] = {}
        #: Deliveries in flight by system (over every worker).
        self.in_flight: dict[str, int] = {}
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
            "Age of the oldest sending that is due and could be delivered (held systems' "
            "queues are counted by invoice_outbox_held_sendings instead)",
            value=age,
        )
        held = GaugeMetricFamily(
            "invoice_outbox_held_sendings",
            "Sendings waiting because their system is switched off (reason disabled) or down",
            labels=["system", "reason"],
        )
        for (system, reason), count in sorted(snap.held.items()):
            held.add_metric([system, reason], count)
        yield held
        in_flight = GaugeMetricFamily(
            "invoice_outbox_lane_in_flight",
            "Deliveries in flight per system, over every worker",
            labels=["system"],
        )
        for system, count in sorted(snap.in_flight.items()):
            in_flight.add_metric([system], count)
        yield in_flight
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
