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

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.contract.payloads import Message, StateMessage, StockReport, Telemetry, parse_message
from gateway.contract.reasons import ProtocolError
from gateway.contract.topics import bridge_state_community
from gateway.ingest.bulk import PendingReading, insert_readings
from gateway.ingest.health import LAST_WILL, DeviceHealth, Stored
from gateway.ingest.incidents import set_state
from gateway.ingest.links import UnknownCommunity, parse_link_state, record_link_state
from gateway.ingest.rules import Rule
from gateway.store import stock
from gateway.store.models import DeadLetter, Device, Good, Reading, Site, Stock
from gateway.store.models.region import Community

log = logging.getLogger(__name__)
MISS_TTL_S = 5.0  # how long an unknown device slug is not looked up again


@dataclass(frozen=True)
class RawMessage:
    """A message as it came off the wire."""

    topic: str
    payload: bytes
    received_at: datetime
    retain: bool = False  # MQTT retain flag: set on a retained message the broker replays on (re)subscription


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
        self._stock_top: dict[int, int] = {}  # highest stored stock report seq of this batch's devices
        self._stock_loaded: set[int] = set()  # the devices `_stock_top` was loaded for
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

        Readings (telemetry and stock reports) go in one bulk INSERT per batch; a stock report's levels and
        state messages are applied one by one in arrival order, and a device's pending readings are written
        before its own state message, so each device's messages keep their order.
        """
        result = BatchResult()
        pending: list[tuple[PendingReading, KnownDevice, Telemetry | StockReport]] = []
        _held = self._load_rows(session, batch)  # kept: the session's identity map holds rows weakly
        waiting: set[int] = set()  # devices with telemetry in `pending`
        for raw in batch:
            try:
                community = bridge_state_community(raw.topic)
                if community is not None:
                    result.state_changes += self._apply_link(session, community, raw)
                    continue
                message = _parse(raw)
                device = self._device_for(session, message)
                body = message.body
                if isinstance(body, Telemetry | StockReport):
                    if isinstance(body, StockReport):
                        self._apply_stock(session, device, body, raw.received_at)
                    text = raw.payload.decode()  # validated UTF-8 JSON: stored as received
                    row = PendingReading(device.id, body.seq, body.kind, body.ts, raw.received_at, text)
                    pending.append((row, device, body))
                    waiting.add(device.id)
                    continue
                if device.id in waiting:  # keep each device's order; other devices' readings can wait
                    self._flush(session, pending, result)
                    waiting.clear()
                assert isinstance(body, StateMessage)
                result.state_changes += self._apply_state(session, device, body, raw.received_at)
            except (ProtocolError, StoreRejected) as exc:
                if self.dead_letter(session, raw, exc.reason, exc.detail):
                    result.dead_letters[exc.reason] += 1
                else:
                    result.duplicates += 1
        self._flush(session, pending, result)
        if self.health.activity_due():
            self.health.flush_activity(session)
        return result

    def _load_rows(self, session: Session, batch: list[RawMessage]) -> list[object]:
        """Load what the batch's state and stock messages will touch in three queries: device rows, the
        stock rows of their sites, and the highest stock report seq stored per device.

        Those messages are applied one by one; without this each did its own SELECTs: a start-up storm of
        10,000 births took minutes, and a stream with 8% stock reports stored ~100 messages per second.
        """
        devices: dict[int, KnownDevice] = {}
        stock: set[int] = set()
        for raw in batch:
            if raw.topic.endswith(("/state", "/stock")):
                known = self._devices.get(raw.topic.rsplit("/", 2)[-2])
                if known is not None:
                    devices[known.id] = known
                    if raw.topic.endswith("/stock"):
                        stock.add(known.id)
        self._stock_top, self._stock_loaded = {}, set()
        if not devices:
            return []
        held: list[object] = list(session.scalars(select(Device).where(Device.id.in_(devices))))
        if stock:
            sites = {devices[d].site_id for d in stock}
            held += session.scalars(select(Stock).where(Stock.site_id.in_(sites)))
            top = (
                select(Reading.device_id, func.max(Reading.seq))
                .where(Reading.device_id.in_(stock), Reading.kind == "stock")
                .group_by(Reading.device_id)
            )
            self._stock_top = {device_id: seq for device_id, seq in session.execute(top)}
            self._stock_loaded = stock
        return held

    def _flush(
        self,
        session: Session,
        pending: list[tuple[PendingReading, KnownDevice, Telemetry | StockReport]],
        result: BatchResult,
    ) -> None:
        if not pending:
            return
        new = insert_readings(session, [row for row, _, _ in pending])
        result.stored += len(new)
        result.duplicates += len(pending) - len(new)
        stored = (
            Stored(d.id, d.kind, b.seq, b.ts, row.received_at, *_judged(b))
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

    def _apply_stock(self, session: Session, device: KnownDevice, body: StockReport, now: datetime) -> None:
        """Apply a stock report's levels unless a newer report is stored (a late store-and-forward one, or
        a redelivery: both have a seq at most the highest stored); its reading row goes in the bulk insert."""
        unknown = sorted(set(body.levels) - set(self._goods))
        if unknown:
            self.refresh(session)
            unknown = sorted(set(body.levels) - set(self._goods))
        if unknown:
            raise StoreRejected("unknown_good", ", ".join(unknown)[:200])
        top = self._stock_top.get(device.id)
        if top is None and device.id not in self._stock_loaded:  # a device provisioned since the batch began
            newest = select(func.max(Reading.seq)).where(
                Reading.device_id == device.id, Reading.kind == "stock"
            )
            top = session.scalar(newest)
        if top is not None and body.seq <= top:
            return
        self._stock_top[device.id] = body.seq
        goods = {self._goods[slug]: qty for slug, qty in body.levels.items()}
        self._apply_levels(session, device, body.seq, goods, now)

    def _apply_levels(
        self, session: Session, device: KnownDevice, seq: int, levels: dict[int, float], now: datetime
    ) -> None:
        for good_id, quantity in levels.items():
            stock.report_level(session, device.site_id, good_id, quantity, device.id, seq, now)

    def _apply_link(self, session: Session, community: str, raw: RawMessage) -> int:
        """A community bridge's link state (not a device message: it has no seq, no JSON)."""
        up = parse_link_state(raw.payload)
        try:
            return int(record_link_state(session, community, up, raw.received_at))
        except UnknownCommunity:
            raise StoreRejected("unknown_community", community) from None

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
        reason = "clean stop" if body.clean else LAST_WILL
        self.health.went_offline(device.id, body.clean)
        return set_state(session, device, "offline", now, reason)

    def dead_letter(self, session: Session, raw: RawMessage, reason: str, detail: str) -> bool:
        """Keep a rejected message byte for byte with its reason; False if it was a retained replay of a
        message already kept.

        The broker replays a retained message, with the retain flag set, on every (re)subscription: without
        the check a retained malformed state message got one more row on each gateway reconnect. A repeat
        that is not retained is the device really sending it again, and is kept every time.
        """
        topic = storable_text(raw.topic[:1024])
        if raw.retain and _already_kept(session, topic, raw.payload, reason):
            return False
        session.add(
            DeadLetter(
                received_at=raw.received_at,
                topic=topic,
                payload=raw.payload,
                reason=reason,
                detail=storable_text(detail[:500]),
            )
        )
        return True


def _already_kept(session: Session, topic: str, payload: bytes, reason: str) -> bool:
    """Whether a dead letter with these bytes, topic and reason exists (`reason` is indexed; a retained
    message judged differently, say after an upgrade, is kept again with its new reason)."""
    query = select(DeadLetter.id).where(
        DeadLetter.reason == reason, DeadLetter.topic == topic, DeadLetter.payload == payload
    )
    return session.scalar(query.limit(1)) is not None


def _judged(body: Telemetry | StockReport) -> tuple[dict[str, float | bool], tuple[str, ...]]:
    """What fault detection sees of a reading: a stock report only says the device is alive."""
    if isinstance(body, Telemetry):
        return dict(body.metrics), body.faults
    return {}, ()


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
