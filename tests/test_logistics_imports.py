"""The solver stays free of the store, and `rhizome --help` does not pay for PuLP, SQLAlchemy or numpy."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("logistics.allocation.solve", ("sqlalchemy", "gateway", "flask", "paho", "dashboard")),
        ("logistics.cli", ("pulp", "sqlalchemy", "numpy", "logistics.allocation.solve")),
    ],
)
def test_importing_does_not_drag_in(module: str, absent: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(sorted(m for m in {absent!r} if m in sys.modules))"
    run = [sys.executable, "-c", code]
    result = subprocess.run(run, capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
