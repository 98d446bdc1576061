"""CBC through PuLP: pick the binary once, then accept only a proven optimum as the solver's outcome."""

from __future__ import annotations

import logging
import math

import pulp

from gateway.contract.errors import InvalidInput
from logistics.common.errors import PlanningError

log = logging.getLogger(__name__)


def make_cbc(time_limit_s: float, warm_start: bool = False) -> pulp.LpSolver:
    """CBC with a wall-clock limit: a system `cbc` if installed, else the binary bundled with PuLP.

    With `warm_start`, CBC starts from the variables' initial values (`setInitialValue`).
    """
    if not math.isfinite(time_limit_s) or time_limit_s <= 0:
        raise InvalidInput(f"time limit must be a positive number of seconds, got {time_limit_s}")
    limit = max(1, math.ceil(time_limit_s))
    system = pulp.COIN_CMD(msg=False, timeLimit=limit, warmStart=warm_start)
    if system.available():
        return system
    # PULP_CBC_CMD itself is deprecated (a warning on construction); its bundled binary is not.
    bundled_path = getattr(getattr(pulp, "PULP_CBC_CMD", None), "pulp_cbc_path", None)
    if bundled_path:
        bundled = pulp.COIN_CMD(path=bundled_path, msg=False, timeLimit=limit, warmStart=warm_start)
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


def highs_available() -> bool:
    """Whether HiGHS (`highspy`) can be used through PuLP."""
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


def make_mip_solver(time_limit_s: float, warm_start: bool = False) -> tuple[pulp.LpSolver, str]:
    """HiGHS through `highspy` when installed (stronger on set partitioning), else CBC; with its name.

    With `warm_start` the solver starts from the variables' initial values (`setInitialValue`).
    """
    if not math.isfinite(time_limit_s) or time_limit_s <= 0:
        raise InvalidInput(f"time limit must be a positive number of seconds, got {time_limit_s}")
    if highs_available():
        solver_class = _HiGHSFromStart if warm_start else pulp.HiGHS
        return solver_class(msg=False, timeLimit=time_limit_s, threads=1), "HiGHS"
    return make_cbc(time_limit_s, warm_start=warm_start), "CBC"


class _HiGHSFromStart(pulp.HiGHS):
    """PuLP's HiGHS, handed the variables' initial values as a MIP start before it runs."""

    def callSolver(self, lp: pulp.LpProblem) -> None:
        import highspy

        variables = lp.variables()
        start = [v.varValue if v.varValue is not None else 0.0 for v in variables]
        solution = highspy.HighsSolution()
        solution.col_value = start
        solution.value_valid = True
        lp.solverModel.setSolution(solution)
        lp.solverModel.run()


def mip_gap(problem: pulp.LpProblem) -> float | None:
    """The relative gap HiGHS reports after a solve (None for other solvers or before a solve)."""
    model = getattr(problem, "solverModel", None)
    if model is None:
        return None
    try:
        return float(model.getInfo().mip_gap)
    except (AttributeError, TypeError, ValueError):
        return None
