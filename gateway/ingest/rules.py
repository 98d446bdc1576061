"""Fault rules (gateway/ingest/faults/rules.toml): what readings mean that something is broken, by kind."""

from __future__ import annotations

import operator
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.contract.payloads import DEVICE_KINDS, METRICS
from gateway.store.models.vocab import SEVERITIES

OPS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
KINDS = ("threshold", "rate", "stuck", "code", "silent")
URGENCY_BASE = {"critical": 100, "high": 60, "medium": 30, "low": 10}


@dataclass(frozen=True)
class Condition:
    """`metric op value`; a reading without the metric does not satisfy it."""

    metric: str
    op: str
    value: float | bool

    def holds(self, metrics: Mapping[str, float | bool]) -> bool:
        value = metrics.get(self.metric)
        return value is not None and OPS[self.op](value, self.value)


@dataclass(frozen=True)
class Rule:
    """One fault rule; see the comments at the top of rules.toml."""

    name: str
    title: str
    device_kind: str
    kind: str
    severity: str
    skills: tuple[str, ...]
    when: tuple[Condition, ...] = ()
    metrics: tuple[str, ...] = ()
    per_min: float = 0.0
    for_s: float = 0.0
    clear_after_s: float = 300.0
    min_readings: int = 1  # stuck rules: identical readings in a row needed besides the duration
    guard: tuple[Condition, ...] = ()  # `while`: readings outside these conditions say nothing
    repair_hours: float = 2.0  # what the planner reserves of a crew member's week for the task's repair

    def applies_to(self, device_kind: str) -> bool:
        return self.device_kind in ("*", device_kind)

    @property
    def urgency(self) -> int:
        """Base urgency from severity; the people a site serves add to it (see incidents.py)."""
        return URGENCY_BASE[self.severity]


def _rule(raw: Mapping[str, Any]) -> Rule:
    name = raw.get("name", "?")

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"fault rule {name!r}: {what}")

    need(raw.get("kind") in KINDS, f"kind must be one of {KINDS}")
    need(raw.get("severity") in SEVERITIES, f"severity must be one of {SEVERITIES}")
    need(raw.get("device_kind") in (*DEVICE_KINDS, "*"), f"device_kind must be one of {DEVICE_KINDS} or *")
    when = tuple(Condition(m, op, v) for m, op, v in raw.get("when", []))
    guard = tuple(Condition(m, op, v) for m, op, v in raw.get("while", []))
    for c in when + guard:
        need(c.metric in METRICS and c.op in OPS, f"bad condition {c}")
    metrics = raw.get("metric", [])
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    for metric in metrics:
        need(metric in METRICS, f"unknown metric {metric!r}")
    need(raw["kind"] != "threshold" or bool(when), "a threshold rule needs `when` conditions")
    need(raw["kind"] not in ("rate", "stuck") or bool(metrics), "rate and stuck rules need `metric`")
    need(float(raw.get("for_s", 0)) >= 0 and float(raw.get("clear_after_s", 300)) >= 0, "negative duration")
    need(isinstance(raw.get("min_readings", 1), int) and raw.get("min_readings", 1) >= 1, "min_readings < 1")
    repair_hours = raw.get("repair_hours", 2.0)
    need(
        isinstance(repair_hours, int | float)
        and not isinstance(repair_hours, bool)
        and 0 < repair_hours <= 24,
        "repair_hours must be a number of hours in (0, 24]",
    )
    return Rule(
        name=name,
        title=raw.get("title", name),
        device_kind=raw["device_kind"],
        kind=raw["kind"],
        severity=raw["severity"],
        skills=tuple(raw.get("skills", ())),
        when=when,
        metrics=metrics,
        per_min=float(raw.get("per_min", 0.0)),
        for_s=float(raw.get("for_s", 0.0)),
        clear_after_s=float(raw.get("clear_after_s", 300.0)),
        min_readings=int(raw.get("min_readings", 1)),
        guard=guard,
        repair_hours=float(repair_hours),
    )


def load_rules(path: Path | None = None) -> tuple[Rule, ...]:
    """Read and check a rules file (default: the bundled one); ValueError names the bad rule."""
    if path is None:
        text = (resources.files("gateway.ingest") / "faults" / "rules.toml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    rules = tuple(_rule(raw) for raw in tomllib.loads(text).get("rule", []))
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError("fault rule names must be unique")
    return rules
