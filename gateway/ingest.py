"""Turn validated upstream messages into rows: readings, stock and ledger, device state, dead letters.

Pure store logic with no MQTT in it, so tests feed raw (topic, payload) pairs straight in.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, exists, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.bulk import PendingReading, insert_readings
from gateway.health import DeviceHealth, Stored
from gateway.incidents import set_state
from gateway.models import DeadLetter, Device, Good, Reading, Site, Stock, StockLedgerEntry
from gateway.models.region import Community
from gateway.protocol import Message, ProtocolError, StateMessage, StockReport, Telemetry, parse_message
from gateway.rules import Rule

log = logging.getLogger(__name__)
MISS_TTL_S = 5.0  # how long an unknown device slug is not looked up again


@dataclass(frozen=True)
class RawMessage:
    """A message as it came off the wire."""

    topic: str
    payload: bytes
    received_at: datetime


@dataclass(frozen=True)
class KnownDevice:
    """What ingestion needs to know about a registered device."""

    id: int
    site_id: int
    community: str
    site: str
    kind: str


@dataclass
class BatchResult:
    """Counts of one processed batch."""

    stored: int = 0
    duplicates: int = 0
    state_changes: int = 0
    incidents: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    def merge(self, other: BatchResult) -> None:
        """Add another result's counts to this one."""
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.state_changes += other.state_changes
        self.incidents += other.incidents
        self.dead_letters.update(other.dead_letters)


class StoreRejected(Exception):
    """A message passed the contract but the store refused it (unknown device, unknown good...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Ingestor:
    """Applies batches of raw messages to the store in the caller's transaction."""

    def __init__(self, engine: Engine, rules: Sequence[Rule] | None = None) -> None:
        self._dialect = engine.dialect.name
        self._devices: dict[str, KnownDevice] = {}
        self._goods: dict[str, int] = {}
        self._misses: dict[str, float] = {}
        self.health = DeviceHealth(rules)
        self._device_query = (
            select(Device.slug, Device.id, Site.id, Community.slug, Site.slug, Device.kind)
            .join(Site, Device.site_id == Site.id)
            .join(Community, Site.community_id == Community.id)
        )

    def refresh(self, session: Session) -> None:
        """Reload the device and goods registries and device health (at start and after a rollback)."""
        self._devices = {row[0]: KnownDevice(*row[1:]) for row in session.execute(self._device_query)}
        self._goods = {slug: good_id for slug, good_id in session.execute(select(Good.slug, Good.id))}
        self.health.reload(session)

    def process(self, session: Session, batch: list[RawMessage]) -> BatchResult:
        """Store every message of `batch` or dead-letter it; never raises for a bad message.

        Telemetry, the bulk of the traffic, goes in one INSERT per run of consecutive telemetry messages;
        stock and state messages are applied one by one, in arrival order, between those runs.
        """
        result = BatchResult()
        pending: list[tuple[PendingReading, KnownDevice, Telemetry]] = []
        for raw in batch:
            try:
                message = _parse(raw)
                device = self._device_for(session, message)
                if isinstance(message.body, Telemetry):
                    body = message.body
                    text = raw.payload.decode()  # validated UTF-8 JSON: stored as received
                    row = PendingReading(device.id, body.seq, body.kind, body.ts, raw.received_at, text)
                    pending.append((row, device, body))
                    continue
                self._flush(session, pending, result)
                self._apply(session, message, device, raw, result)
            except (ProtocolError, StoreRejected) as exc:
                self.dead_letter(session, raw, exc.reason, exc.detail)
                result.dead_letters[exc.reason] += 1
        self._flush(session, pending, result)
        if self.health.activity_due():
            self.health.flush_activity(session)
        return result

    def _flush(
        self,
        session: Session,
        pending: list[tuple[PendingReading, KnownDevice, Telemetry]],
        result: BatchResult,
    ) -> None:
        if not pending:
            return
        new = insert_readings(session, [row for row, _, _ in pending])
        result.stored += len(new)
        result.duplicates += len(pending) - len(new)
        stored = (
            Stored(d.id, d.kind, b.seq, b.ts, row.received_at, dict(b.metrics), b.faults)
            for row, d, b in pending
            if (row.device_id, row.seq) in new
        )
        changes, incidents = self.health.after_telemetry(session, stored)
        result.state_changes += changes
        result.incidents += incidents
        pending.clear()

    def flush_activity(self, session: Session) -> None:
        """Write accumulated last-seen times now (normally every few seconds)."""
        self.health.flush_activity(session)

    def _lookup(self, session: Session, slug: str) -> KnownDevice | None:
        """Find a device provisioned since the last refresh; misses are remembered briefly (spam)."""
        now = time.monotonic()
        if now - self._misses.get(slug, -MISS_TTL_S) < MISS_TTL_S:
            return None
        row = session.execute(self._device_query.where(Device.slug == slug)).first()
        if row is None:
            if len(self._misses) > 10_000:
                self._misses.clear()
            self._misses[slug] = now
            return None
        self._devices[slug] = device = KnownDevice(*row[1:])
        return device

    def _device_for(self, session: Session, message: Message) -> KnownDevice:
        topic = message.topic
        device = self._devices.get(topic.device)
        if device is None:
            device = self._lookup(session, topic.device)
        if device is None:
            raise StoreRejected("unknown_device", topic.device)
        if (device.community, device.site) != (topic.community, topic.site):
            raise StoreRejected(
                "device_topic_mismatch",
                f"{topic.device} belongs to {device.community}/{device.site}, "
                f"not {topic.community}/{topic.site}",
            )
        return device

    def _apply(
        self, session: Session, message: Message, device: KnownDevice, raw: RawMessage, result: BatchResult
    ) -> None:
        body = message.body
        if isinstance(body, StateMessage):
            result.state_changes += self._apply_state(session, device, body, raw.received_at)
            return
        goods = {}
        if isinstance(body, StockReport):
            unknown = sorted(set(body.levels) - set(self._goods))
            if unknown:
                self.refresh(session)
                unknown = sorted(set(body.levels) - set(self._goods))
            if unknown:
                raise StoreRejected("unknown_good", ", ".join(unknown)[:200])
            goods = {self._goods[slug]: qty for slug, qty in body.levels.items()}
        payload: dict[str, Any] = body.to_dict()
        inserted = self._insert_reading(session, device.id, body, payload, raw.received_at)
        if not inserted:
            result.duplicates += 1
            return
        result.stored += 1
        if isinstance(body, StockReport) and not self._newer_stock_report_exists(
            session, device.id, body.seq
        ):
            self._apply_levels(session, device, body.seq, goods, raw.received_at)
        self._touch(session, device, body.seq, raw.received_at, result)

    def _insert_reading(
        self,
        session: Session,
        device_id: int,
        body: Telemetry | StockReport,
        payload: dict[str, Any],
        now: datetime,
    ) -> bool:
        values = {
            "device_id": device_id,
            "seq": body.seq,
            "kind": body.kind,
            "device_ts": body.ts,
            "received_at": now,
            "payload": payload,
        }
        if self._dialect == "postgresql":
            stmt: Any = pg_insert(Reading).values(values).on_conflict_do_nothing()
        elif self._dialect == "sqlite":
            stmt = sqlite_insert(Reading).values(values).on_conflict_do_nothing()
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            stmt = insert(Reading).values(values)
        # RETURNING tells reliably whether the row was new (rowcount is driver-dependent with ON CONFLICT).
        return session.execute(stmt.returning(Reading.id)).first() is not None

    def _newer_stock_report_exists(self, session: Session, device_id: int, seq: int) -> bool:
        """A late (store-and-forward) report must not overwrite a newer level."""
        newer = exists().where(Reading.device_id == device_id, Reading.kind == "stock", Reading.seq > seq)
        return bool(session.scalar(select(newer)))

    def _apply_levels(
        self, session: Session, device: KnownDevice, seq: int, levels: dict[int, float], now: datetime
    ) -> None:
        for good_id, quantity in levels.items():
            row = session.get(Stock, (device.site_id, good_id))
            before = row.quantity if row else 0.0
            if row is not None and before == quantity:
                continue
            if row is None:
                row = Stock(site_id=device.site_id, good_id=good_id)
                session.add(row)
            row.quantity, row.updated_at = quantity, now
            session.add(
                StockLedgerEntry(
                    site_id=device.site_id,
                    good_id=good_id,
                    delta=quantity - before,
                    quantity_after=quantity,
                    reason="stock report",
                    source="sensor",
                    device_id=device.id,
                    seq=seq,
                    created_at=now,
                )
            )

    def _touch(
        self, session: Session, known: KnownDevice, seq: int, now: datetime, result: BatchResult
    ) -> None:
        device = session.get(Device, known.id)
        assert device is not None
        device.last_seen_at = now
        device.last_seq = max(seq, device.last_seq or 0)
        if device.state in ("unknown", "offline", "stale"):
            result.state_changes += set_state(session, device, "online", now, "data received")
            self.health.went_online(device.id)

    def _apply_state(self, session: Session, known: KnownDevice, body: StateMessage, now: datetime) -> int:
        device = session.get(Device, known.id)
        assert device is not None
        current = device.session
        if body.state == "online":
            if current is not None and body.session < current:
                return 0  # a retained birth from an older session
            device.session = body.session
            device.last_seen_at = now
            self.health.went_online(device.id)
            return set_state(session, device, "online", now, "birth")
        if current is not None and body.session != current:
            return 0  # the will of an older session arriving late: the device is already back
        reason = "clean stop" if body.clean else "last will"
        self.health.went_offline(device.id)
        return set_state(session, device, "offline", now, reason)

    def dead_letter(self, session: Session, raw: RawMessage, reason: str, detail: str) -> None:
        """Keep a rejected message byte for byte with its reason."""
        session.add(
            DeadLetter(
                received_at=raw.received_at,
                topic=storable_text(raw.topic[:1024]),
                payload=raw.payload,
                reason=reason,
                detail=storable_text(detail[:500]),
            )
        )


def storable_text(text: str) -> str:
    """Text any database accepts: a detail may quote the sender's lone surrogates or NUL characters, which
    UTF-8 cannot encode and PostgreSQL refuses; they are written as escapes instead."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _parse(raw: RawMessage) -> Message:
    """Validate a message; an unexpected failure of the validation itself is a rejection, not a crash."""
    try:
        return parse_message(raw.topic, raw.payload, now=raw.received_at)
    except ProtocolError:
        raise
    except Exception as exc:  # a bug in the validator must not crash the writer on every redelivery
        log.exception("validation failed unexpectedly on %s", raw.topic[:200])
        raise StoreRejected("parser_error", f"{exc.__class__.__name__}: {exc}"[:500]) from exc
