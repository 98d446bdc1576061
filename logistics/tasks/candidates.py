"""Who could be asked for each place of a batch (a week): up to `MatchInput.candidates` suited people
with room, and a cost-aware first fit among them: the model's pairs, its warm start, and the plan of any
part no solver gets to."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from numpy.typing import NDArray

from logistics.tasks.costs import ROOM_EPS, pair_cost, penalty
from logistics.tasks.data import MatchInput, OpenPlace, Volunteer
from logistics.tasks.pool import Ledger, Pool

LOOK_FIRST = 4  # sort this many x the candidates wanted first (most places need no more)


@dataclass(frozen=True)
class Pair:
    """One (place, volunteer) pair the model may choose: the volunteer's pool index, distance and cost."""

    place: OpenPlace
    volunteer: Volunteer
    index: int
    distance_km: float
    cost: float


@dataclass(frozen=True)
class Batch:
    """A week's candidate pairs and a first-fit choice among them (indices into `pairs`): the MIP's warm
    start, and the plan of the week if no solver finishes."""

    pairs: list[Pair]
    first_fit: list[int]


def suited(place: OpenPlace, v: Volunteer) -> bool:
    """Skill (None or a newcomer place: anyone) and no decline: the rules that need no loads."""
    if v.id in place.excluded:
        return False
    return place.skill is None or place.newcomer or place.skill in v.skills


def priority(place: OpenPlace) -> tuple[int, int, datetime, int, int]:
    """First-fit order: urgent first, then places that need a skill (fewer people can take them)."""
    needs_skill = place.skill is not None and not place.newcomer
    return (-place.urgency, 0 if needs_skill else 1, place.starts_at, place.shift_id, place.slot_id)


def candidates(data: MatchInput, pool: Pool, places: Sequence[OpenPlace], ledger: Ledger) -> Batch:
    """For each place (in `priority` order), up to `data.candidates` suited volunteers with room within
    `max_km`, the least loaded first (then the nearest, then those who prefer the sector), and a first-fit
    pick among them.

    The order counts the hours the first fit already gave out in this batch, so the lists of neighbouring
    places spread over different people instead of all naming the same few; a place whose listed people
    the first fit has all used up gets one more, the next person it can still take, if there is one."""
    pairs: list[Pair] = []
    picks: list[int] = []
    tentative = ledger.copy()
    offer = pool.offer.tolist()
    # Who could take a place at all (skill, room in the week and the sector): the same for many places.
    can: dict[tuple[str | None, date, str, float], NDArray[np.bool_]] = {}
    for place in sorted(places, key=priority):
        rule = (None if place.newcomer else place.skill, place.week, place.sector, place.hours)
        if rule not in can:
            can[rule] = (
                pool.can_do(place)
                & (ledger.week_room[place.week] >= place.hours - ROOM_EPS)
                & (ledger.sector_room[place.sector] >= place.hours - ROOM_EPS)
            )
        idx, km = pool.near(place)
        ok = can[rule][idx]
        near, dist = idx[ok], km[ok]
        if near.size == 0:
            continue
        ratio = tentative.hours[near] / np.maximum(pool.offer[near], 1e-9)
        score = np.minimum(ratio, 10.0) + 0.5 * dist / data.max_km - 0.1 * pool.preferred[place.sector][near]
        start, end = place.starts_at.timestamp(), place.ends_at.timestamp()
        prefers, gap = pool.prefers[place.sector], pool.gap[place.sector]
        found, pick, best = 0, -1, float("inf")
        for chunk in _best_first(score, LOOK_FIRST * data.candidates):
            for j, d in zip(near[chunk].tolist(), dist[chunk].tolist(), strict=True):
                v = pool.volunteers[j]
                if v.id in place.excluded or not pool.is_free(j, start, end):
                    continue
                if ledger.overlaps(j, place.starts_at, place.ends_at):
                    continue
                fits = tentative.fits(place, j)
                if found >= data.candidates and not fits:
                    continue  # the list is full: look on only for someone the first fit can take
                cost = pair_cost(prefers[j], gap[j], d)
                pairs.append(Pair(place, v, j, d, cost))
                found += 1
                if fits:
                    # The cheapest listed person with room, load penalty included: the model's measure.
                    dear = cost + penalty(offer[j], tentative.ratio(pool, j), place.hours)
                    if dear < best:
                        pick, best = len(pairs) - 1, dear
                if found >= data.candidates and pick >= 0:
                    break
            if found >= data.candidates and pick >= 0:
                break
        if pick >= 0:
            tentative.take(place, pairs[pick].index)
            picks.append(pick)
    return Batch(pairs, picks)


def _best_first(score: NDArray[np.float64], first: int) -> Iterator[NDArray[np.intp]]:
    """Positions in `score` from the lowest up, in two sorted chunks: the `first` lowest, then (only if
    the caller is still looking) the rest; ties in position order."""
    if score.size <= first:
        yield np.argsort(score, kind="stable")
        return
    top = np.argpartition(score, first - 1)[:first]
    yield top[np.lexsort((top, score[top]))]
    rest = np.setdiff1d(np.arange(score.size), top, assume_unique=True)
    yield rest[np.argsort(score[rest], kind="stable")]
