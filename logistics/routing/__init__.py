"""Delivery routing: data -> model (the flattened problem, a solution) -> ruin-and-recreate search and set
partitioning -> a checked plan.

`solve_routing(RoutingInput) -> RoutingPlan` is the door; `solve_region(RegionRouting)` routes a region
(points per site, distances on demand) in districts, each one a `solve_routing`; `read_instance` turns a
CVRPLIB or Li & Lim file into routing input, and `check_plan` recomputes every rule of a plan from its
input alone. `limits` turns a driver's availability, work already held and offer into free slots;
`fairness` the load ratios.
"""

from logistics.routing.check import check_plan
from logistics.routing.data import (
    UNLIMITED,
    PlannedRoute,
    Request,
    RoutingInput,
    RoutingPlan,
    Stop,
    Unassigned,
    VehicleSpec,
    Workload,
)
from logistics.routing.districts import solve_region
from logistics.routing.region import RegionRouting
from logistics.routing.solve import COMPLETE, INCOMPLETE, solve_routing
from logistics.routing.vrpfile import Instance, read_instance

__all__ = [
    "COMPLETE",
    "INCOMPLETE",
    "UNLIMITED",
    "Instance",
    "PlannedRoute",
    "RegionRouting",
    "Request",
    "RoutingInput",
    "RoutingPlan",
    "Stop",
    "Unassigned",
    "VehicleSpec",
    "Workload",
    "check_plan",
    "read_instance",
    "solve_region",
    "solve_routing",
]
