"""The plan desk's reads: the current delivery plan, the planner's last runs and controls, what share of
each shortage the plan meets by good and community, and what it could not reach, with the reason.

Everything comes from the store: the planner writes a summary per run (gateway.store.planner), so the desk
works with or without a planner running, and says when it last ran."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store import planner
from gateway.store.models import Community, DeliveryPlan, Good, PlanRun, Route
from gateway.store.models.vocab import PlanStatus
from logistics.allocation.report import REASONS

SHORTFALLS_SHOWN: Final = 100
TRIGGER_WORDS: Final = {
    "start": "the planner starting",
    "timer": "its timer",
    "event": "deliveries recorded or a route given back",
    "coordinator": "a coordinator (re-plan now)",
    "command": "the command line",
}


@dataclass(frozen=True)
class Coverage:
    """Need and what the plan sends, summed for one good or one community."""

    name: str
    unit: str
    need: float
    planned: float
    shortages: int
    unmet: int
    share_sum: float | None = None  # for a community: the sum of its shortages' shares

    @property
    def percent(self) -> int:
        """The share met: of the quantity for a good, the mean of its shortages' shares for a community."""
        if self.share_sum is not None:
            return round(100 * self.share_sum / self.shortages) if self.shortages else 100
        return round(100 * min(1.0, self.planned / self.need)) if self.need > 0 else 100


@dataclass(frozen=True)
class ShortfallRow:
    """One shortage not met in full, by name."""

    community: str
    good: str
    unit: str
    need: float
    planned: float
    reason: str


@dataclass(frozen=True)
class RunLine:
    """A past run, in a line."""

    at: datetime
    trigger: str
    outcome: str
    text: str


@dataclass(frozen=True)
class Desk:
    """Everything the plan page shows."""

    controls: planner.Controls
    plan: DeliveryPlan | None
    run: PlanRun | None  # the latest run that planned
    summary: dict[str, Any]
    routes: dict[str, int]  # current routes of the plan by status
    held: int
    by_good: list[Coverage]
    by_community: list[Coverage]
    reasons: list[tuple[str, str, int]]  # (code, words, shortages)
    shortfalls: list[ShortfallRow]
    shortfalls_total: int
    unrouted: list[dict[str, Any]]
    runs: list[RunLine]


def desk(session: Session, reason: str | None = None) -> Desk:
    """The plan page's figures (shortfalls of one `reason` only, when given)."""
    plan = session.scalars(
        select(DeliveryPlan)
        .where(DeliveryPlan.status == PlanStatus.PROPOSED)
        .order_by(DeliveryPlan.id.desc())
        .limit(1)
    ).first()
    run = planner.latest_run(session, "planned")
    summary = dict(run.summary) if run is not None else {}
    communities = dict(session.execute(select(Community.id, Community.name)).all())
    goods = {g.id: g for g in session.scalars(select(Good))}
    routes: dict[str, int] = {}
    if plan is not None:
        counts = session.execute(
            select(Route.status, func.count()).where(Route.plan_id == plan.id).group_by(Route.status)
        )
        routes = {status: int(n) for status, n in counts}
    unmet = [s for s in (run.shortfalls if run is not None else []) if s.get("reason")]
    counted = Counter(str(s["reason"]) for s in unmet)
    stored_counts = summary.get("reasons") or counted
    chosen = [s for s in unmet if reason is None or s["reason"] == reason]
    return Desk(
        controls=planner.controls(session),
        plan=plan,
        run=run,
        summary=summary,
        routes=routes,
        held=planner.held_count(session),
        by_good=_coverage(summary.get("by_good", {}), {i: (g.name, g.unit) for i, g in goods.items()}),
        by_community=_coverage(
            summary.get("by_community", {}), {i: (n, "") for i, n in communities.items()}, mean=True
        ),
        reasons=[(code, REASONS.get(code, code), int(n)) for code, n in sorted(stored_counts.items())],
        shortfalls=[_shortfall(s, communities, goods) for s in chosen[:SHORTFALLS_SHOWN]],
        shortfalls_total=len(chosen),
        unrouted=list(run.unrouted) if run is not None else [],
        runs=[_line(r) for r in planner.recent_runs(session, 8)],
    )


def _coverage(
    rows: dict[str, dict[str, float]], names: dict[int, tuple[str, str]], mean: bool = False
) -> list[Coverage]:
    """Coverage rows (the worst met first, then by name): what to look at first. With `mean`, the share
    is the mean of the shortages' shares (a community's goods come in different units)."""
    found = []
    for key, row in rows.items():
        name, unit = names.get(int(key), (f"#{key} (removed)", ""))
        found.append(
            Coverage(
                name,
                unit,
                float(row.get("need", 0.0)),
                float(row.get("planned", 0.0)),
                int(row.get("shortages", 0)),
                int(row.get("unmet", 0)),
                float(row.get("share_sum", 0.0)) if mean else None,
            )
        )
    return sorted(found, key=lambda c: (c.percent, c.name))


def _shortfall(row: dict[str, Any], communities: dict[int, str], goods: dict[int, Good]) -> ShortfallRow:
    good = goods.get(int(row["good"]))
    return ShortfallRow(
        communities.get(int(row["community"]), f"#{row['community']}"),
        good.name if good is not None else f"#{row['good']}",
        good.unit if good is not None else "",
        float(row["need"]),
        float(row["planned"]),
        REASONS.get(str(row["reason"]), str(row["reason"])),
    )


def _line(run: PlanRun) -> RunLine:
    s = run.summary or {}
    if run.outcome == "planned":
        unmet = sum((s.get("reasons") or {}).values())
        text = (
            f"{_count(s.get('shipments', 0), 'shipment')}, {s.get('kg', 0):g} kg to "
            f"{_count(s.get('receivers', 0), 'community', 'communities')}; "
            f"{_count(s.get('shortages', 0), 'shortage')}, {unmet} not met in full"
        )
    elif run.outcome == "paused":
        text = "paused by a coordinator: no planning until resumed"
    else:
        text = f"failed: {run.error}"
    return RunLine(run.started_at, TRIGGER_WORDS.get(run.trigger, run.trigger), run.outcome, text)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"
