"""CBC through PuLP: pick the binary once, then accept only a proven optimum as the solver's outcome."""

from __future__ import annotations

import logging
import math

import pulp

from logistics.errors import PlanningError

log = logging.getLogger(__name__)


def make_cbc(time_limit_s: float) -> pulp.LpSolver:
    """CBC with a wall-clock limit: a system `cbc` if installed, else the binary bundled with PuLP."""
    if not math.isfinite(time_limit_s) or time_limit_s <= 0:
        raise ValueError(f"time limit must be a positive number of seconds, got {time_limit_s}")
    limit = max(1, math.ceil(time_limit_s))
    system = pulp.COIN_CMD(msg=False, timeLimit=limit)
    if system.available():
        return system
    # PULP_CBC_CMD itself is deprecated (a warning on construction); its bundled binary is not.
    bundled_path = getattr(getattr(pulp, "PULP_CBC_CMD", None), "pulp_cbc_path", None)
    if bundled_path:
        bundled = pulp.COIN_CMD(path=bundled_path, msg=False, timeLimit=limit)
        if bundled.available():
            return bundled
    raise PlanningError("setup", "NoSolver", "CBC not found; install it with `pip install pulp[cbc]`")


def solve_optimal(problem: pulp.LpProblem, solver: pulp.LpSolver, stage: str) -> float:
    """Solve and return the objective, or raise PlanningError unless CBC proved optimality."""
    try:
        problem.solve(solver)
    except pulp.PulpSolverError as exc:
        raise PlanningError(stage, "SolverError", str(exc)) from exc
    check_outcome(problem.status, problem.sol_status, stage)
    value = pulp.value(problem.objective)
    return float(value) if value is not None else 0.0


def check_outcome(status: int, sol_status: int, stage: str) -> None:
    """Raise PlanningError for anything short of a proven optimum."""
    if status == pulp.LpStatusOptimal and sol_status == pulp.LpSolutionOptimal:
        return
    name = pulp.LpStatus.get(status, str(status))
    solution = pulp.LpSolution.get(sol_status, str(sol_status))
    if status == pulp.LpStatusOptimal:
        # PuLP reports CBC's "Stopped on time - objective value ..." as Optimal with a mere feasible solution.
        raise PlanningError(stage, "Stopped", f"stopped early with an unproven solution ({solution})")
    raise PlanningError(stage, name, solution)
