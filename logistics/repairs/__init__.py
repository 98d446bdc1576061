"""Repair assignment: data -> qualified (task, member, window) triples and the binary model -> lexicographic
solve -> plan.

`solve_repairs(RepairInput) -> RepairPlan` is the door: most urgent first, then the smallest largest load
ratio (week hours / weekly pledge), then rotation and travel; own community first, then escalated to
neighbours and (with `region_fallback`) the region; every stage proven optimal or an error. No plan takes
anyone past their weekly pledge or yearly sector offer, outside their free time, or back to a task they
declined in the last 7 days.
"""

from logistics.repairs.data import (
    DEFAULT_BASELINE,
    ESSENTIAL_SECTORS,
    REPAIR_SECTOR,
    Assignment,
    CrewMember,
    RepairInput,
    RepairJob,
    RepairPlan,
    Unassignable,
    availability_intervals,
    gini,
)
from logistics.repairs.model import Candidate, RepairVars, build_repair_model, candidates
from logistics.repairs.solve import solve_repairs

__all__ = [
    "DEFAULT_BASELINE",
    "ESSENTIAL_SECTORS",
    "REPAIR_SECTOR",
    "Assignment",
    "Candidate",
    "CrewMember",
    "RepairInput",
    "RepairJob",
    "RepairPlan",
    "RepairVars",
    "Unassignable",
    "availability_intervals",
    "build_repair_model",
    "candidates",
    "gini",
    "solve_repairs",
]
