"""One week of the board's matcher: a cost-aware first fit, then improved region by region in PuLP.

A week's model over every place at once is more than HiGHS can close in a second or two (2,758 places and
16,540 pairs: 5-10 s), so the week is searched by neighbourhoods: its places are split into compact regions
(halving along the wider side) and, in turn, each region's places are freed and matched again by the MIP
with everything else held fixed: the people's loads, pledges and planned spans from the rest of the week
and from earlier weeks stay in the `Ledger`. Every step keeps the plan feasible and never makes it worse
(the solver starts from the region's current choice), so the week ends at least as good as the first fit,
and a region the clock leaves no time for keeps it. Regions are small enough (~100 places) for HiGHS to
reach the gap in a few hundredths of a second.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pulp
from numpy.typing import NDArray

from logistics.common.solver import make_mip_solver
from logistics.tasks.candidates import Batch, Pair
from logistics.tasks.costs import open_cost, penalty
from logistics.tasks.data import MatchInput, OpenPlace
from logistics.tasks.model import MatchModel, build_match_model
from logistics.tasks.pool import Ledger, Pool

log = logging.getLogger(__name__)

REGION_PLACES: Final = 100  # places per neighbourhood the MIP re-solves at once
MIN_SOLVE_S: Final = 0.02  # below this a region keeps its current choice (HiGHS needs a few hundredths)
FINISH_S: Final = 0.3  # kept back from the time limit for reasons, explanations and the check
TOL: Final = 1e-6


@dataclass
class Tally:
    """What the run did, for `MatchPlan.stats` (the bench prints it)."""

    weeks: int = 0
    pairs: int = 0
    solver: str = ""
    regions: int = 0
    proven_regions: int = 0  # solved to the gap
    kept_regions: int = 0  # kept their first fit: no time left, or the solver found nothing better
    first_fit_cost: float = 0.0  # the objective of the first fit, summed over the weeks
    cost: float = 0.0  # the objective of the plan, summed over the weeks
    candidates_s: float = 0.0
    build_s: float = 0.0
    solver_s: float = 0.0  # the solver calls, PuLP's hand-over included


class Clock:
    """The run's deadline, shared out per place: what is left, less the listing still to do, goes to the
    places not yet through a region, each region taking its places' share for building its model, PuLP's
    hand-over and the solver (measured so far, per place)."""

    def __init__(self, time_limit_s: float, places: int) -> None:
        self.deadline = time.perf_counter() + time_limit_s
        self.unlisted = places  # candidates not listed yet
        self.unsolved = places  # not through a region yet (nor left out of every region)
        self._listed = [0.0, 0.0]  # places, seconds
        self._built = [0.0, 0.0]  # places, seconds building region models
        self._handed = [0.0, 0.0]  # places, seconds of PuLP's own around the solver

    def listed(self, places: int, seconds: float) -> None:
        self._listed = [self._listed[0] + places, self._listed[1] + seconds]
        self.unlisted -= places

    def solved(self, places: int, built_s: float, handover_s: float | None) -> None:
        """A region is done: `handover_s` None if its solver never ran."""
        self._built = [self._built[0] + places, self._built[1] + built_s]
        if handover_s is not None:
            self._handed = [self._handed[0] + places, self._handed[1] + handover_s]
        self.unsolved -= places

    def skip(self, places: int) -> None:
        """Places no region solves (nobody listed, or no time)."""
        self.unsolved -= places

    def limit(self, places: int, built_s: float | None = None) -> float | None:
        """Seconds for the solver of a region of `places`, once built in `built_s` (before: None, and the
        build is estimated); None when that is too little to start."""
        listing = self._listed[1] / self._listed[0] if self._listed[0] else 0.0
        spare = self.deadline - time.perf_counter() - FINISH_S - listing * self.unlisted
        share = spare * places / max(self.unsolved, places)
        building = self._built[1] / self._built[0] if self._built[0] else 0.0
        if built_s is None:
            share -= building * places
        handing = (
            self._handed[1] / self._handed[0] if self._handed[0] else (built_s or building * places) / places
        )
        share -= handing * places
        return share if share >= MIN_SOLVE_S else None


def regions(places: Sequence[OpenPlace], size: int = REGION_PLACES) -> list[list[OpenPlace]]:
    """The places in compact groups of at most `size`: halved at the median along the wider side (in km),
    so few people live near places of two groups."""
    if len(places) <= size:
        return [list(places)] if places else []
    lats, lons = [p.lat for p in places], [p.lon for p in places]
    squeeze = math.cos(math.radians(sum(lats) / len(lats)))
    by_lat = max(lats) - min(lats) >= (max(lons) - min(lons)) * squeeze
    ordered = sorted(places, key=lambda p: (p.lat if by_lat else p.lon, p.starts_at, p.key))
    half = len(ordered) // 2
    return regions(ordered[:half], size) + regions(ordered[half:], size)


def plan_week(
    data: MatchInput, pool: Pool, ledger: Ledger, batch: Batch, clock: Clock, gap: float, tally: Tally
) -> list[int]:
    """The week's choice (indices into `batch.pairs`), taken into `ledger`: the first fit, improved region
    by region while the clock allows."""
    pairs = batch.pairs
    by_place: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, c in enumerate(pairs):
        by_place[c.place.key].append(k)
    places = list({c.place.key: c.place for c in pairs}.values())
    before = ledger.hours.copy()
    pick_of = {pairs[k].place.key: k for k in batch.first_fit}
    for k in batch.first_fit:
        ledger.take(pairs[k].place, pairs[k].index)
    tally.first_fit_cost += week_cost(pool, before, pairs, batch.first_fit, places)
    for region in regions(places, REGION_PLACES):
        tally.regions += 1
        if tally.regions > 1 and clock.limit(len(region)) is None:
            clock.skip(len(region))  # no time to build it: it keeps its first fit
            tally.kept_regions += 1
            continue
        began = time.perf_counter()
        mine = [pick_of.pop(p.key) for p in region if p.key in pick_of]
        for k in mine:
            ledger.give_back(pairs[k].place, pairs[k].index)
        # Only pairs the rest of the plan leaves room for (pledge, offer, no overlap with fixed work).
        idx = [k for p in region for k in by_place[p.key] if ledger.fits(pairs[k].place, pairs[k].index)]
        model = build_match_model(data, pool, [pairs[k] for k in idx], ledger)
        at = {k: n for n, k in enumerate(idx)}
        start = [at[k] for k in mine]
        model.start_from(start)
        built = time.perf_counter() - began
        tally.build_s += built
        limit = clock.limit(len(region), built)
        picked: Sequence[int] = start
        if limit is None:
            clock.solved(len(region), built, None)
        else:
            solving = time.perf_counter()
            picked, proven, tally.solver = _solve_region(model, start, limit, gap)
            took = time.perf_counter() - solving
            tally.solver_s += took
            tally.proven_regions += proven
            clock.solved(len(region), built, max(took - (_run_s(model.problem) or took), 0.0))
        tally.kept_regions += picked is start
        for n in picked:
            k = idx[n]
            ledger.take(pairs[k].place, pairs[k].index)
            pick_of[pairs[k].place.key] = k
    chosen = sorted(pick_of.values())
    tally.cost += week_cost(pool, before, pairs, chosen, places)
    return chosen


def week_cost(
    pool: Pool,
    before: NDArray[np.float64],
    pairs: Sequence[Pair],
    chosen: Sequence[int],
    places: Sequence[OpenPlace],
) -> float:
    """The model's objective of a week's choice: open places, pairs' costs, and each person's load penalty
    from where they stood before the week (`before`: hours by pool index)."""
    hours: dict[int, float] = defaultdict(float)
    total = 0.0
    for k in chosen:
        hours[pairs[k].index] += pairs[k].place.hours
        total += pairs[k].cost
    taken = {pairs[k].place.key for k in chosen}
    total += sum(open_cost(p) for p in places if p.key not in taken)
    for i, h in hours.items():
        offer = float(pool.offer[i])
        start = float(before[i]) / offer if offer > 0 else (math.inf if before[i] > 0 else 0.0)
        total += penalty(offer, start, h)
    return total


def _solve_region(
    model: MatchModel, start: Sequence[int], limit_s: float, gap: float
) -> tuple[Sequence[int], bool, str]:
    """The region's choice (indices into the model's pairs), whether it is proven within the gap, and the
    solver's name; `start` itself when the solver gives nothing usable or nothing better."""
    solver, name = make_mip_solver(limit_s, warm_start=True)
    if isinstance(solver, pulp.HiGHS):
        solver.gapRel = gap
        # It starts from the current choice: skip the search for a first feasible point. Presolve costs
        # more than it saves on regions this small (measured: 0.7 s instead of 2.2 s for a week's 32).
        solver.optionsDict["mip_heuristic_run_feasibility_jump"] = False
        solver.optionsDict["presolve"] = "off"
    else:
        solver.optionsDict["gapRel"] = gap
    start_cost = pulp.value(model.problem.objective) or 0.0  # the initial values' objective
    try:
        model.problem.solve(solver)
    except pulp.PulpSolverError as exc:
        log.warning("task board: solver failed (%s), keeping the region's first fit", exc)
        return start, False, name
    status, solution = model.problem.status, model.problem.sol_status
    usable = solution in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    values = [var.value() for var in model.choices]
    if not usable or any(x is None or min(abs(x), abs(1 - x)) > 1e-4 for x in values):
        log.info("task board: no integer solution in %.2f s, keeping the region's first fit", limit_s)
        return start, False, name
    if (pulp.value(model.problem.objective) or 0.0) >= start_cost - TOL:
        return start, status == pulp.LpStatusOptimal and solution == pulp.LpSolutionOptimal, name
    proven = status == pulp.LpStatusOptimal and solution == pulp.LpSolutionOptimal
    return [k for k, x in enumerate(values) if x is not None and x > 0.5], proven, name


def _run_s(problem: pulp.LpProblem) -> float | None:
    """How long the solver itself ran (HiGHS says; None for a solver that does not)."""
    try:
        return float(problem.solverModel.getRunTime())
    except (AttributeError, TypeError, ValueError):
        return None
