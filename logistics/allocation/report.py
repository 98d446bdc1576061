"""What a plan does for each shortage, in terms a coordinator can act on: the need, what the plan sends, and
when it falls short, why (nobody has any to spare, the surplus is out of reach, or there is too little to
go round). Pure: input and plan in, plain rows out (the planner stores them with the run)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Final

from logistics.allocation.data import AllocationInput, AllocationPlan

MET: Final = 1.0 - 1e-6  # coverage counted as the whole need (coverages are rounded to 6 digits)
# Why a shortage is not (wholly) met: the codes the desk explains.
NO_SURPLUS: Final = "no_surplus"  # no community holds any of the good above its own needs
UNREACHABLE: Final = "unreachable"  # some do, but none within reach (too far, or it spoils on the way)
NOT_ENOUGH: Final = "not_enough"  # reachable, but the surplus within reach is shared among those short
REASONS: Final = {
    NO_SURPLUS: "no community has any to spare",
    UNREACHABLE: "no surplus within reach (too far, or it would spoil on the way)",
    NOT_ENOUGH: "too little surplus within reach: what there is is shared among those short",
}


@dataclass(frozen=True)
class Shortfall:
    """One shortage (a community below its minimum of a good) and what the plan does about it."""

    community: int
    good: int
    need: float  # up to the target
    planned: float  # what the plan sends
    reason: str | None  # None: met in full

    @property
    def share(self) -> float:
        """The part of the need the plan meets, 0..1."""
        return min(1.0, self.planned / self.need) if self.need > 0 else 1.0


def shortfalls(data: AllocationInput, plan: AllocationPlan) -> list[Shortfall]:
    """Every shortage of the plan with its need, what is sent and (if not met) why, by community and good."""
    holdings = {(h.place_id, h.good_id): h for h in data.holdings}
    essential = {g.id for g in data.goods if g.essential}
    spare: dict[int, float] = defaultdict(float)
    for h in data.holdings:
        spare[h.good_id] += h.supply(data.reserve_fraction)
        if h.good_id in essential:
            spare[h.good_id] += h.spare(data.share_margin)
    unreachable = set(plan.unreachable)
    rows = []
    for key, coverage in sorted(plan.coverage.items()):
        holding = holdings.get(key)
        need = holding.demand if holding is not None else 0.0
        reason = None
        if coverage < MET:
            if spare[key[1]] <= 0:
                reason = NO_SURPLUS
            elif key in unreachable:
                reason = UNREACHABLE
            else:
                reason = NOT_ENOUGH
        rows.append(Shortfall(key[0], key[1], round(need, 6), round(coverage * need, 6), reason))
    return rows


def planned_kg(data: AllocationInput, plan: AllocationPlan) -> float:
    """The weight the plan moves, kg."""
    weight = {g.id: g.weight_kg_per_unit for g in data.goods}
    return round(sum(s.quantity * weight.get(s.good_id, 1.0) for s in plan.shipments), 3)


def as_rows(found: list[Shortfall]) -> list[dict[str, Any]]:
    """Shortfalls as JSON-able rows, the unmet first (then by community and good)."""
    ordered = sorted(found, key=lambda s: (s.reason is None, s.community, s.good))
    return [asdict(s) for s in ordered]


def coverage_by(found: list[Shortfall], key: str) -> dict[str, dict[str, float]]:
    """Need and planned summed by "good" or "community" (ids as strings, for JSON), with the shortages
    counted, those left wholly or partly unmet, and the sum of their shares (a community's goods come in
    different units, so its coverage is the mean share of its shortages, not a sum of quantities)."""
    if key not in ("good", "community"):
        raise ValueError(f"coverage is grouped by good or community, not {key!r}")
    totals: dict[str, dict[str, float]] = {}
    for s in found:
        row = totals.setdefault(
            str(getattr(s, key)), {"need": 0.0, "planned": 0.0, "shortages": 0, "unmet": 0, "share_sum": 0.0}
        )
        row["need"] += s.need
        row["planned"] += s.planned
        row["shortages"] += 1
        row["unmet"] += s.reason is not None
        row["share_sum"] += s.share
    rounded = ("need", "planned", "share_sum")
    return {k: v | {name: round(v[name], 6) for name in rounded} for k, v in totals.items()}


def reason_counts(found: list[Shortfall]) -> dict[str, int]:
    """How many shortages each reason leaves unmet."""
    counts: dict[str, int] = defaultdict(int)
    for s in found:
        if s.reason is not None:
            counts[s.reason] += 1
    return dict(counts)
