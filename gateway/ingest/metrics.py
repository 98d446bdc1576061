"""Prometheus metrics for the gateway: a prometheus_client collector over the ingest loop's plain counters,
served on /metrics by prometheus_client's HTTP server at a configurable address."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.models import Device, OutboxMessage

log = logging.getLogger(__name__)
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def rhizome_version() -> str:
    """The installed package's version, for rhizome_build_info ("unknown" when run from a bare checkout)."""
    try:
        return version("rhizome")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class GatewayMetrics:
    """Counters the ingest loop updates; read by the scrape handler (plain ints: safe under the GIL)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    incidents: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    batch_seconds: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))
    batch_sum: float = 0.0
    batch_count: int = 0

    def observe_batch(self, seconds: float) -> None:
        """Record one batch's commit latency in the histogram."""
        index = next((i for i, bound in enumerate(BATCH_BUCKETS) if seconds <= bound), len(BATCH_BUCKETS))
        self.batch_seconds[index] += 1
        self.batch_sum += seconds
        self.batch_count += 1

    def registry(self, sessions: sessionmaker[Session] | None) -> CollectorRegistry:
        """A registry of its own (not the process-global one: tests run several gateways in one process)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_GatewayCollector(self, sessions))
        return registry

    def render(self, sessions: sessionmaker[Session] | None) -> str:
        """The Prometheus text exposition, with device states and outbox backlog read from the store."""
        return generate_latest(self.registry(sessions)).decode("utf-8")


class _GatewayCollector(Collector):
    """Reads the counters (and the store's gauges) at each scrape."""

    def __init__(self, metrics: GatewayMetrics, sessions: sessionmaker[Session] | None) -> None:
        self.metrics, self.sessions = metrics, sessions

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        info = GaugeMetricFamily(
            "rhizome_build_info", "The running Rhizome's version (always 1).", labels=["version"]
        )
        info.add_metric([rhizome_version()], 1)
        yield info
        for name, text, value in (
            ("rhizome_messages_received", "MQTT messages taken off the broker.", m.received),
            ("rhizome_readings_stored", "Readings stored (new rows).", m.stored),
            ("rhizome_duplicates", "Redelivered messages already stored.", m.duplicates),
            ("rhizome_incidents", "Faults opened or cleared.", m.incidents),
        ):
            yield CounterMetricFamily(name, text, value=value)
        dead = CounterMetricFamily(
            "rhizome_dead_letters",
            "Invalid messages kept in the dead-letter table, by reason.",
            labels=["reason"],
        )
        for reason, n in sorted(m.dead_letters.items()):
            dead.add_metric([reason], n)
        yield dead
        buckets, cumulative = [], 0
        for bound, count in zip((*BATCH_BUCKETS, float("inf")), m.batch_seconds, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "rhizome_batch_seconds",
            "Time to store and commit one batch.",
            buckets=buckets,
            sum_value=m.batch_sum,
        )
        if self.sessions is not None:
            yield from _store_gauges(self.sessions)


def _store_gauges(sessions: sessionmaker[Session]) -> list[Metric]:
    """Devices by state and the outbox backlog; none at all while the store is unavailable."""
    try:
        with sessions() as session:
            states = session.execute(select(Device.state, func.count()).group_by(Device.state)).all()
            backlog = session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
            )
    except SQLAlchemyError as exc:
        log.warning("metrics: store unavailable: %s", exc.__class__.__name__)
        return []
    devices = GaugeMetricFamily("rhizome_devices", "Devices by state.", labels=["state"])
    for state, n in sorted(states):
        devices.add_metric([state], n)
    outbox = GaugeMetricFamily(
        "rhizome_outbox_backlog", "Messages waiting to be published.", value=backlog or 0
    )
    return [devices, outbox]


def serve_metrics(
    metrics: GatewayMetrics, sessions: sessionmaker[Session], host: str, port: int
) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics on host:port in a daemon thread; call .shutdown() on the server to stop it."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry(sessions))
    log.info("metrics on http://%s:%s/metrics", host, server.server_address[1])
    return server, thread
