"""Errors of the planner: one small tree so callers catch planning failures apart from bad input."""

from __future__ import annotations


class LogisticsError(Exception):
    """Base of every error the planner raises on purpose (bad input stays a plain ValueError)."""


class PlanningError(LogisticsError):
    """The solver gave no proven optimum, so no plan is returned rather than a partial one."""

    def __init__(self, stage: str, status: str, detail: str = "") -> None:
        self.stage = stage
        self.status = status
        self.detail = detail
        message = f"{stage}: solver status {status!r}"
        super().__init__(f"{message}: {detail}" if detail else message)
