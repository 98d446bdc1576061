"""Repair assignment: data -> qualified pairs and the binary model -> lexicographic solve -> plan.

`solve_repairs(RepairInput) -> RepairPlan` is the door: most urgent first, own community first, then
escalated to neighbours and (with `region_fallback`) the region; every stage proven optimal or an error.
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
    hours_until_available,
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
    "build_repair_model",
    "candidates",
    "hours_until_available",
    "solve_repairs",
]
