"""The solver stays free of the store, and `rhizome --help` does not pay for PuLP, SQLAlchemy or numpy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each case starts a fresh interpreter


def loaded_after_import(module: str, packages: tuple[str, ...]) -> list[str]:
    """The modules of `packages` that a fresh interpreter holds after importing `module`."""
    code = (
        f"import json, sys, {module}; packages = {packages!r}; "
        "print(json.dumps(sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') "
        "for p in packages))))"
    )
    run = [sys.executable, "-c", code]
    result = subprocess.run(run, capture_output=True, text=True, check=True, timeout=60)
    return list(json.loads(result.stdout))


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("logistics.allocation.solve", ("sqlalchemy", "flask", "paho", "dashboard")),
        ("logistics.cli", ("pulp", "sqlalchemy", "numpy", "logistics.allocation.solve")),
    ],
)
@pytest.mark.slow
def test_importing_does_not_drag_in(module: str, absent: tuple[str, ...]) -> None:
    assert loaded_after_import(module, absent) == []


@pytest.mark.parametrize(
    "module", ["logistics.allocation", "logistics.routing", "logistics.repairs", "logistics.tasks"]
)
def test_a_planner_takes_only_the_error_tree_from_the_gateway(module: str) -> None:
    # gateway.contract.errors is stdlib only; the store, ingest and the MQTT client stay out of the solvers.
    expected = ["gateway", "gateway.contract", "gateway.contract.errors"]
    assert loaded_after_import(module, ("gateway",)) == expected
