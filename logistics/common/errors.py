"""Errors of the planner: one small branch of Rhizome's error tree, so callers catch planning failures apart
from bad input (which raises `InvalidInput`, a `ValueError`)."""

from __future__ import annotations

from gateway.contract.errors import RhizomeError


class LogisticsError(RhizomeError):
    """Base of every error the planner raises on purpose, other than bad input."""


class PlanningError(LogisticsError):
    """The solver gave no proven optimum, so no plan is returned rather than a partial one."""

    def __init__(self, stage: str, status: str, detail: str = "") -> None:
        self.stage = stage
        self.status = status
        self.detail = detail
        message = f"{stage}: solver status {status!r}"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __reduce__(self) -> tuple[type[PlanningError], tuple[str, str, str]]:
        # Raised in a worker process (routing's districts), it must cross back intact.
        return (PlanningError, (self.stage, self.status, self.detail))
