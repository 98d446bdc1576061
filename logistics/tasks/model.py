"""The board's binary program for one batch of pairs (a week's region): `week.py` builds and solves it.

Rows (all named): `place_{shift}_{slot}` one person or the place left open; `pledge_{member}_{week}` their
hours this week stay within their weekly pledge; `offer_{member}_{sector}` within the year's offer in the
sector; `overlap_{member}_{k}` at most one of their places covering one moment; `load_{member}` ties the
hours they get to the segments of their load penalty. A row that can never bind is left out, and someone
who can take one of their places at most pays their load penalty on the pair itself (no segments). Free
time, skill, distance, declines and work planned elsewhere filter the pairs (`candidates.py`, `week.py`);
`solve.check` re-checks every rule on the result. The objective is `costs.py`'s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pulp

from logistics.tasks.candidates import Pair
from logistics.tasks.costs import ROOM_EPS, open_cost, penalty, segments
from logistics.tasks.data import MatchInput, OpenPlace
from logistics.tasks.pool import Ledger, Pool


@dataclass
class MatchModel:
    """The binary program of one batch: the choice variables in the order of the pairs, each place's
    left-open variable, and each person's penalty segments (variable, width in hours or None), in order:
    what a warm start sets."""

    problem: pulp.LpProblem
    choices: list[pulp.LpVariable]
    left_open: dict[tuple[int, int], pulp.LpVariable]
    parts: dict[int, list[tuple[pulp.LpVariable, float | None]]]
    pairs: Sequence[Pair]

    def start_from(self, picked: Sequence[int]) -> None:
        """Set the variables' initial values to the choice `picked` (indices into the pairs)."""
        chosen = set(picked)
        hours: dict[int, float] = defaultdict(float)
        for u in self.left_open.values():
            u.setInitialValue(1)
        for k, (var, c) in enumerate(zip(self.choices, self.pairs, strict=True)):
            var.setInitialValue(1 if k in chosen else 0)
            if k in chosen:
                hours[c.index] += c.place.hours
                self.left_open[c.place.key].setInitialValue(0)
        for i, parts in self.parts.items():
            left = hours.get(i, 0.0)
            for var, width in parts:
                step = left if width is None else min(left, width)
                var.setInitialValue(step)
                left -= step


def build_match_model(data: MatchInput, pool: Pool, pairs: Sequence[Pair], ledger: Ledger) -> MatchModel:
    """The binary program of one batch (module docstring)."""
    problem = pulp.LpProblem("task_board", pulp.LpMinimize)
    chosen = [
        problem.add_variable(f"x_{i}", lowBound=0, upBound=1, cat=pulp.LpBinary) for i in range(len(pairs))
    ]
    by_place: dict[tuple[int, int], list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_week: dict[tuple[int, date], list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_sector: dict[tuple[int, str], list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_member: dict[int, list[tuple[int, Pair]]] = defaultdict(list)
    places: dict[tuple[int, int], OpenPlace] = {}
    for k, (var, c) in enumerate(zip(chosen, pairs, strict=True)):
        by_place[c.place.key].append((var, 1.0))
        places[c.place.key] = c.place
        by_week[(c.index, c.place.week)].append((var, c.place.hours))
        by_sector[(c.index, c.place.sector)].append((var, c.place.hours))
        by_member[c.index].append((k, c))
    ids = [v.id for v in pool.volunteers]
    pair_cost = [c.cost for c in pairs]  # the load penalty of a lone choice joins it below
    cost: list[tuple[pulp.LpVariable, float]] = []
    left_open: dict[tuple[int, int], pulp.LpVariable] = {}
    for (shift, slot), terms in sorted(by_place.items()):
        # Continuous: the row makes it 0 or 1 (one minus a sum of binaries of which at most one is 1).
        u = problem.add_variable(f"open_{shift}_{slot}", lowBound=0, upBound=1)
        left_open[(shift, slot)] = u
        cost.append((u, open_cost(places[(shift, slot)])))
        expr = pulp.LpAffineExpression([*terms, (u, 1.0)])
        problem.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintEQ, rhs=1.0), f"place_{shift}_{slot}")
    most: dict[int, float] = defaultdict(float)  # the most hours each person could get in this batch
    for (i, week), terms in sorted(by_week.items()):
        room = float(ledger.week_room[week][i])
        asked = sum(h for _, h in terms)
        most[i] += min(asked, room)
        if asked > room + ROOM_EPS:
            _row(problem, terms, room, f"pledge_{ids[i]}_{week:%Y%m%d}")
    for (i, sector), terms in sorted(by_sector.items()):
        room = float(ledger.sector_room[sector][i])
        if sum(h for _, h in terms) > room + ROOM_EPS:
            _row(problem, terms, room, f"offer_{ids[i]}_{sector}")
    parts_of: dict[int, list[tuple[pulp.LpVariable, float | None]]] = {}
    for i, mine in sorted(by_member.items()):
        mid, offer, ratio = ids[i], float(pool.offer[i]), ledger.ratio(pool, i)
        hours = sorted(c.place.hours for _, c in mine)
        weeks = {c.place.week for _, c in mine}
        room = float(ledger.week_room[weeks.pop()][i]) if len(weeks) == 1 else float("inf")
        if len(mine) == 1 or hours[0] + hours[1] > room + ROOM_EPS:
            # They can take one of these at most (the pledge row says so): the penalty is one number a pair.
            for k, c in mine:
                pair_cost[k] += penalty(offer, ratio, c.place.hours)
            continue
        for n, clique in enumerate(_cliques([c.place for _, c in mine])):
            if sum(sorted(mine[m][1].place.hours for m in clique)[:2]) <= room + ROOM_EPS:
                _row(problem, [(chosen[mine[m][0]], 1.0) for m in clique], 1.0, f"overlap_{mid}_{n}")
        pieces = segments(offer, ratio, most[i])
        parts = [
            (problem.add_variable(f"s_{mid}_{k}", lowBound=0, upBound=width), width)
            for k, (width, _) in enumerate(pieces)
        ]
        parts_of[i] = parts
        cost += [(s, slope) for (s, _), (_, slope) in zip(parts, pieces, strict=True)]
        expr = pulp.LpAffineExpression(
            [*((chosen[k], c.place.hours) for k, c in mine), *((s, -1.0) for s, _ in parts)]
        )
        problem.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintEQ, rhs=0.0), f"load_{mid}")
    cost += zip(chosen, pair_cost, strict=True)
    problem.setObjective(pulp.LpAffineExpression(cost))
    return MatchModel(problem, chosen, left_open, parts_of, pairs)


def _cliques(places: Sequence[OpenPlace]) -> list[list[int]]:
    """Index sets of places that all cover one moment (at each start where two or more overlap)."""
    order = sorted(range(len(places)), key=lambda i: places[i].starts_at)
    found: list[list[int]] = []
    active: list[int] = []
    for i in order:
        start = places[i].starts_at
        active = [j for j in active if places[j].ends_at > start] + [i]
        if len(active) > 1:
            if found and set(found[-1]) <= set(active):
                found[-1] = list(active)  # the previous one is part of this one: one row is enough
            else:
                found.append(list(active))
    return found


def _row(problem: pulp.LpProblem, terms: list[tuple[pulp.LpVariable, float]], rhs: float, name: str) -> None:
    problem.addConstraint(
        pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintLE, rhs=rhs), name
    )
