"""Surplus allocation: data -> network and LP model -> two-stage solve -> plan.

`solve_allocation(AllocationInput) -> AllocationPlan` is the door: whole units, each shipment worth its trip
(lots.py). `solve_flows` (the LP's fractional optimum) and `build_allocation_model` are there for benchmarks
and tests that inspect the LP itself.
"""

from logistics.allocation.data import (
    SECTOR_PRIORITY,
    AllocationInput,
    AllocationPlan,
    GoodInfo,
    Holding,
    Place,
    PlannedShipment,
    good_priority,
)
from logistics.allocation.model import AllocationVars, Need, build_allocation_model
from logistics.allocation.network import Lane, Network, build_network
from logistics.allocation.solve import NO_LANE, NO_SHORTAGE, in_lots, solve_allocation, solve_flows

__all__ = [
    "NO_LANE",
    "NO_SHORTAGE",
    "SECTOR_PRIORITY",
    "AllocationInput",
    "AllocationPlan",
    "AllocationVars",
    "GoodInfo",
    "Holding",
    "Lane",
    "Need",
    "Network",
    "Place",
    "PlannedShipment",
    "build_allocation_model",
    "build_network",
    "good_priority",
    "in_lots",
    "solve_allocation",
    "solve_flows",
]
