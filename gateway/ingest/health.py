"""Device health for the gateway: last seen, online/offline/stale/fault, and fault incidents from readings.

Kept apart from ingestion so the hot path stays small: ingestion hands over what each batch stored, this
module decides what it means for each device.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.ingest.bulk import record_activity, revive_devices
from gateway.ingest.detector import Detector
from gateway.ingest.incidents import apply_event, set_state
from gateway.ingest.links import link_states, silent_since
from gateway.ingest.rules import Rule, load_rules
from gateway.store.models import Device, DeviceStateChange, Fault, Site

ACTIVITY_EVERY_S = 2.0  # last_seen lags by at most this; stale detection allows far more
LAST_WILL = "last will"  # the state-change reason of an offline the broker published for a lost device


@dataclass(frozen=True)
class Stored:
    """A telemetry reading that was new to the store."""

    device_id: int
    device_kind: str
    seq: int
    ts: datetime
    received_at: datetime
    metrics: dict[str, float | bool]
    faults: tuple[str, ...]


class DeviceHealth:
    """Decides device states and fault incidents; all writes go through the caller's session."""

    def __init__(self, rules: Sequence[Rule] | None = None, stale_factor: float = 1.5) -> None:
        self.detector = Detector(load_rules() if rules is None else rules)
        self.silent_rules = {r.device_kind: r for r in self.detector.rules if r.kind == "silent"}
        self.stale_factor = stale_factor
        self._activity: dict[int, tuple[int, datetime]] = {}
        self._activity_written = time.monotonic()
        self._not_online: set[int] = set()
        self._lost: set[int] = set()  # offline by last will: silent, unless it comes back in time

    def reload(self, session: Session) -> None:
        """Re-read which devices are not online and which incidents are open (start, rollback)."""
        self._not_online = set(session.scalars(select(Device.id).where(Device.state != "online")))
        latest = (
            select(func.max(DeviceStateChange.id))
            .join(Device, Device.id == DeviceStateChange.device_id)
            .where(Device.state == "offline")
            .group_by(DeviceStateChange.device_id)
        )
        self._lost = set(
            session.scalars(
                select(DeviceStateChange.device_id).where(
                    DeviceStateChange.id.in_(latest), DeviceStateChange.reason == LAST_WILL
                )
            )
        )
        open_faults = session.execute(select(Fault.device_id, Fault.kind).where(Fault.status == "open"))
        self.detector.restore((device_id, kind) for device_id, kind in open_faults)

    def went_online(self, device_id: int) -> None:
        self._not_online.discard(device_id)
        self._lost.discard(device_id)

    def went_offline(self, device_id: int, clean: bool) -> None:
        """A clean stop is someone's decision; a last will is a device that lost power or its link, and
        becomes a `silent` fault if it stays away as long as a silent online device would."""
        self._not_online.add(device_id)
        if clean:
            self._lost.discard(device_id)
        else:
            self._lost.add(device_id)

    def after_telemetry(self, session: Session, stored: Iterable[Stored]) -> tuple[int, int]:
        """Judge newly stored readings; return (state changes, incidents opened or cleared)."""
        incidents = 0
        seen: dict[int, tuple[int, datetime]] = {}
        for r in stored:
            best = seen.get(r.device_id)
            seen[r.device_id] = (max(r.seq, best[0]) if best else r.seq, r.received_at)
            for event in self.detector.observe(r.device_id, r.device_kind, r.ts, r.metrics, r.faults):
                apply_event(session, event)
                incidents += 1
        # Only devices not known to be online need the UPDATE; the set is reloaded every few seconds, so a
        # state set by another gateway process is seen soon.
        waking = {d: v for d, v in seen.items() if d in self._not_online}
        changes = revive_devices(session, waking)
        self._not_online.difference_update(waking)
        self._lost.difference_update(waking)
        incidents += self._end_silence(session, seen)
        for device_id, (seq, at) in seen.items():
            known = self._activity.get(device_id)
            self._activity[device_id] = (max(seq, known[0]) if known else seq, at)
        return changes, incidents

    def _end_silence(self, session: Session, seen: dict[int, tuple[int, datetime]]) -> int:
        """Data from a device with an open `silent` incident confirms it is back."""
        count = 0
        for rule in self.silent_rules.values():
            for device_id, (_, at) in seen.items():
                event = self.detector.observe_silence(device_id, rule, False, at)
                if event is not None:
                    apply_event(session, event)
                    count += 1
        return count

    def activity_due(self) -> bool:
        return time.monotonic() - self._activity_written >= ACTIVITY_EVERY_S

    def flush_activity(self, session: Session) -> None:
        """Write accumulated last-seen times and seqs (one executemany every few seconds, not per batch)."""
        record_activity(session, self._activity)
        self._activity = {}
        self._activity_written = time.monotonic()
        self._not_online = set(session.scalars(select(Device.id).where(Device.state != "online")))

    def sweep(self, session: Session, now: datetime) -> int:
        """Mark devices silent for 1.5x their expected interval `stale`, opening `silent` incidents.

        A device behind a community bridge whose link is down is not judged (it cannot be heard); after the
        link returns its silence counts from the return (gateway.ingest.links)."""
        self.flush_activity(session)
        links = link_states(session)
        rows = session.execute(
            select(Device.id, Device.kind, Device.last_seen_at, Device.expected_interval_s, Site.community_id)
            .join(Site, Site.id == Device.site_id)
            .where(Device.state.in_(("online", "fault")), Device.last_seen_at.is_not(None))
        )
        changed = 0
        for device_id, kind, seen, interval, community_id in rows:
            last_seen = silent_since(seen, links.get(community_id)) if seen is not None else None
            if last_seen is None:  # never seen (excluded by the query), or its link is down
                continue
            silent_for = (now - last_seen).total_seconds()
            if silent_for <= self.stale_factor * interval:
                continue
            device = session.get(Device, device_id)
            assert device is not None
            changed += set_state(session, device, "stale", now, f"silent for {silent_for:.0f} s")
            self._not_online.add(device_id)
            self._open_silence(session, device_id, kind, last_seen, now)
        self._lost_are_silent(session, now, links)
        return changed

    def _open_silence(
        self, session: Session, device_id: int, kind: str, since: datetime, now: datetime
    ) -> None:
        """Open the device kind's `silent` fault (once per incident: the detector remembers it is open)."""
        rule = self.silent_rules.get(kind) or self.silent_rules.get("*")
        if rule is not None:
            event = self.detector.observe_silence(device_id, rule, True, since, now)
            if event is not None:
                apply_event(session, event)

    def _lost_are_silent(
        self, session: Session, now: datetime, links: dict[int, tuple[bool, datetime]]
    ) -> None:
        """Open `silent` faults for devices offline by last will for longer than the stale threshold
        (they stay `offline` on the map: that is what the broker said)."""
        if not self._lost:
            return
        rows = session.execute(
            select(Device.id, Device.kind, Device.last_seen_at, Device.expected_interval_s, Site.community_id)
            .join(Site, Site.id == Device.site_id)
            .where(Device.id.in_(self._lost), Device.state == "offline", Device.last_seen_at.is_not(None))
        )
        for device_id, kind, seen, interval, community_id in rows:
            last_seen = silent_since(seen, links.get(community_id)) if seen is not None else None
            if last_seen is None:
                continue
            if (now - last_seen).total_seconds() > self.stale_factor * interval:
                self._open_silence(session, device_id, kind, last_seen, now)
