"""Fault detection: readings in, incident openings and clearings out. Pure and stateful; no database.

Debounce and hysteresis live here: a rule opens one incident when its condition has held for `for_s`, and the
incident clears only after `clear_after_s` of normal readings, so a flapping value gives one fault, not many.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.ingest.rules import Rule

RATE_SAMPLES = 60  # samples kept per rate-rule window


@dataclass(frozen=True)
class Opened:
    """A rule's condition held long enough: open a fault."""

    device_id: int
    rule: Rule
    first_abnormal_at: datetime
    at: datetime
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Cleared:
    """Normal readings long enough after a fault: the data confirms the fix."""

    device_id: int
    rule: Rule
    at: datetime


Event = Opened | Cleared


@dataclass
class _Watch:
    active: bool = False
    abnormal_since: datetime | None = None
    normal_since: datetime | None = None
    samples: deque[tuple[datetime, float]] = field(default_factory=deque)  # rate rules
    unchanged: dict[str, tuple[float | bool, datetime, int]] = field(default_factory=dict)  # value, since, n


class Detector:
    """Tracks every (device, rule) pair; feed it readings in device-time order."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._by_name = {r.name: r for r in self.rules}
        self._watches: dict[tuple[int, str], _Watch] = {}
        self._last_ts: dict[int, datetime] = {}

    def restore(self, open_faults: Iterable[tuple[int, str]]) -> None:
        """Forget everything, then mark the incidents still open in the store as active."""
        self._watches.clear()
        self._last_ts.clear()
        for device_id, rule_name in open_faults:
            if rule_name in self._by_name:
                self._watches[(device_id, rule_name)] = _Watch(active=True)

    def is_active(self, device_id: int, rule_name: str) -> bool:
        watch = self._watches.get((device_id, rule_name))
        return bool(watch and watch.active)

    def observe(
        self,
        device_id: int,
        device_kind: str,
        ts: datetime,
        metrics: Mapping[str, float | bool],
        codes: Sequence[str] = (),
    ) -> list[Event]:
        """Evaluate one reading; readings older than the newest seen (late replays) are not re-judged."""
        last = self._last_ts.get(device_id)
        if last is not None and ts < last:
            return []
        self._last_ts[device_id] = ts
        events: list[Event] = []
        for rule in self.rules:
            if rule.kind == "silent" or not rule.applies_to(device_kind):
                continue
            watch = self._watches.setdefault((device_id, rule.name), _Watch())
            verdict = self._judge(rule, watch, ts, metrics, codes)
            if verdict is None:
                continue  # the reading says nothing about this rule (a metric is missing)
            abnormal, details = verdict
            event = self._step(device_id, rule, watch, ts, abnormal, details)
            if event is not None:
                events.append(event)
        return events

    def observe_silence(
        self, device_id: int, rule: Rule, silent: bool, at: datetime, now: datetime | None = None
    ) -> Event | None:
        """Feed the stale sweep's verdict for a `silent` rule: silence (since `at`, judged at `now`) opens
        at once, any data (at `at`) clears it."""
        watch = self._watches.setdefault((device_id, rule.name), _Watch())
        if silent and not watch.active:
            watch.active = True
            return Opened(device_id, rule, at, now or at, {"silent_since": at.isoformat()})
        if not silent and watch.active:
            watch.active = False
            return Cleared(device_id, rule, at)
        return None

    def _judge(
        self,
        rule: Rule,
        watch: _Watch,
        ts: datetime,
        metrics: Mapping[str, float | bool],
        codes: Sequence[str],
    ) -> tuple[bool, dict[str, Any]] | None:
        if rule.kind == "code":
            return bool(codes), {"codes": list(codes)}
        if rule.guard and not all(c.metric in metrics and c.holds(metrics) for c in rule.guard):
            return None  # outside the rule's `while` (a stopped motor says nothing about overcurrent)
        if rule.kind == "threshold":
            if any(c.metric not in metrics for c in rule.when):
                return None
            values = {c.metric: metrics[c.metric] for c in rule.when}
            return all(c.holds(metrics) for c in rule.when), {"values": values}
        if rule.kind == "rate":
            metric = rule.metrics[0]
            value = metrics.get(metric)
            if value is None or isinstance(value, bool):
                return None
            # One sample per 1/RATE_SAMPLES of the window is enough for the slope, and bounds the memory
            # whatever the report rate: every reading of a 10-minute window of a cold room reporting every
            # 3 s was 200 samples per room, and 2,500 rooms grew the soak's writer by 6 MiB a minute.
            if not watch.samples or (ts - watch.samples[-1][0]).total_seconds() >= rule.for_s / RATE_SAMPLES:
                watch.samples.append((ts, float(value)))
            while len(watch.samples) > 1 and (ts - watch.samples[1][0]).total_seconds() >= rule.for_s:
                watch.samples.popleft()
            first_ts, first = watch.samples[0]
            minutes = (ts - first_ts).total_seconds() / 60
            if minutes * 60 < rule.for_s * 0.9:
                return False, {}
            slope = (float(value) - first) / minutes
            return slope > rule.per_min, {"metric": metric, "per_min": round(slope, 3)}
        # stuck: any listed metric frozen at exactly the same value for for_s
        present = [m for m in rule.metrics if m in metrics]
        if not present:
            return None
        frozen = []
        for metric in present:
            value = metrics[metric]
            since = watch.unchanged.get(metric)
            if since is None or since[0] != value:
                watch.unchanged[metric] = (value, ts, 1)
                continue
            watch.unchanged[metric] = since = (value, since[1], since[2] + 1)
            if (ts - since[1]).total_seconds() >= rule.for_s and since[2] >= rule.min_readings:
                frozen.append(metric)
        return bool(frozen), {"metrics": frozen}

    def _step(
        self, device_id: int, rule: Rule, watch: _Watch, ts: datetime, abnormal: bool, details: dict[str, Any]
    ) -> Event | None:
        # rate and stuck rules measured their duration already: the incident began where the window began
        if rule.kind == "stuck" and abnormal:
            first = min(watch.unchanged[m][1] for m in details["metrics"])
            watch.abnormal_since = watch.abnormal_since or first
        elif rule.kind == "rate" and abnormal:
            watch.abnormal_since = watch.abnormal_since or watch.samples[0][0]
        if abnormal:
            watch.normal_since = None
            if watch.abnormal_since is None:
                watch.abnormal_since = ts
            if not watch.active and (ts - watch.abnormal_since).total_seconds() >= rule.for_s:
                watch.active = True
                return Opened(device_id, rule, watch.abnormal_since, ts, details)
            return None
        watch.abnormal_since = None
        if not watch.active:
            return None
        if watch.normal_since is None:
            watch.normal_since = ts
        if (ts - watch.normal_since).total_seconds() >= rule.clear_after_s:
            watch.active, watch.normal_since = False, None
            return Cleared(device_id, rule, ts)
        return None
