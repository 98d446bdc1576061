"""Prometheus text metrics for the gateway, served on /metrics by a small stdlib HTTP server."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.models import Device, OutboxMessage

log = logging.getLogger(__name__)
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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

    def render(self, sessions: sessionmaker[Session] | None) -> str:
        """The Prometheus text exposition, with device states and outbox backlog read from the store."""
        lines = [
            "# HELP rhizome_messages_received_total MQTT messages taken off the broker.",
            "# TYPE rhizome_messages_received_total counter",
            f"rhizome_messages_received_total {self.received}",
            "# HELP rhizome_readings_stored_total Readings stored (new rows).",
            "# TYPE rhizome_readings_stored_total counter",
            f"rhizome_readings_stored_total {self.stored}",
            "# HELP rhizome_duplicates_total Redelivered messages already stored.",
            "# TYPE rhizome_duplicates_total counter",
            f"rhizome_duplicates_total {self.duplicates}",
            "# HELP rhizome_incidents_total Faults opened or cleared.",
            "# TYPE rhizome_incidents_total counter",
            f"rhizome_incidents_total {self.incidents}",
            "# HELP rhizome_dead_letters_total Invalid messages kept in the dead-letter table, by reason.",
            "# TYPE rhizome_dead_letters_total counter",
        ]
        lines += [
            f'rhizome_dead_letters_total{{reason="{r}"}} {n}' for r, n in sorted(self.dead_letters.items())
        ]
        lines += [
            "# HELP rhizome_batch_seconds Time to store and commit one batch.",
            "# TYPE rhizome_batch_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*BATCH_BUCKETS, float("inf")), self.batch_seconds, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'rhizome_batch_seconds_bucket{{le="{le}"}} {cumulative}')
        lines += [
            f"rhizome_batch_seconds_sum {self.batch_sum:.6f}",
            f"rhizome_batch_seconds_count {self.batch_count}",
        ]
        if sessions is not None:
            lines += _store_gauges(sessions)
        return "\n".join(lines) + "\n"


def _store_gauges(sessions: sessionmaker[Session]) -> list[str]:
    try:
        with sessions() as session:
            states = session.execute(select(Device.state, func.count()).group_by(Device.state)).all()
            backlog = session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
            )
    except SQLAlchemyError as exc:
        log.warning("metrics: store unavailable: %s", exc.__class__.__name__)
        return ["# store unavailable"]
    lines = ["# HELP rhizome_devices Devices by state.", "# TYPE rhizome_devices gauge"]
    lines += [f'rhizome_devices{{state="{state}"}} {n}' for state, n in sorted(states)]
    lines += [
        "# HELP rhizome_outbox_backlog Messages waiting to be published.",
        "# TYPE rhizome_outbox_backlog gauge",
        f"rhizome_outbox_backlog {backlog or 0}",
    ]
    return lines


def serve_metrics(
    metrics: GatewayMetrics, sessions: sessionmaker[Session], host: str, port: int
) -> ThreadingHTTPServer:
    """Serve GET /metrics in a daemon thread; call .shutdown() on the result to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            body = metrics.render(sessions).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%s/metrics", host, server.server_address[1])
    return server
