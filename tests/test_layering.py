"""Imports flow one way: devices -> contract; gateway owns the store; logistics solvers are pure;
nothing imports dashboard."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "logistics", "dashboard", "devices")
# logistics modules allowed to touch the store: the loader (ORM) and the process that owns the session.
LOGISTICS_STORE_MODULES = {"loader.py", "service.py", "cli.py"}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", files("devices"), ids=lambda p: str(p.relative_to(ROOT)))
def test_devices_use_only_the_stdlib_paho_and_the_contract(path: Path) -> None:
    allowed_third_party = {"paho"}
    for name in imports_of(path):
        if top(name) == "gateway":
            assert name in ("gateway", "gateway.contract.protocol") or name.startswith(
                "gateway.contract.protocol."
            ), name
        elif top(name) != "devices":
            assert top(name) in sys.stdlib_module_names or top(name) in allowed_third_party, f"{path}: {name}"


@pytest.mark.parametrize("path", files("gateway"), ids=lambda p: str(p.relative_to(ROOT)))
def test_gateway_imports_neither_logistics_nor_dashboard(path: Path) -> None:
    assert not {top(n) for n in imports_of(path)} & {"logistics", "dashboard", "devices"}


def test_protocol_is_stdlib_only() -> None:
    for name in imports_of(ROOT / "gateway" / "protocol.py"):
        assert top(name) in sys.stdlib_module_names or name == "__future__", name


@pytest.mark.parametrize("path", files("logistics"), ids=lambda p: str(p.relative_to(ROOT)))
def test_logistics_solvers_are_pure(path: Path) -> None:
    tops = {top(n) for n in imports_of(path)}
    assert not tops & {"flask", "paho", "dashboard", "folium"}, path
    if path.name not in LOGISTICS_STORE_MODULES:
        assert not tops & {"sqlalchemy", "gateway"}, f"{path} touches the store; only loader.py may"
    if path.name != "loader.py":
        assert not any(n.startswith("gateway.store.models") for n in imports_of(path)), (
            f"{path}: ORM outside loader"
        )


@pytest.mark.parametrize(
    "path", [p for pkg in ("gateway", "logistics", "devices") for p in files(pkg)], ids=lambda p: p.name
)
def test_nothing_imports_dashboard(path: Path) -> None:
    assert "dashboard" not in {top(n) for n in imports_of(path)}


def test_top_level_is_exactly_the_agreed_layout() -> None:
    tracked = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"}
    expected = {"gateway", "logistics", "dashboard", "devices", "tests", "pyproject.toml", "README.md", ".ci"}
    optional = {"bench", "docs", "Makefile", "var", "build", "rhizome.egg-info"}
    assert expected <= tracked
    assert tracked <= expected | optional, tracked - expected - optional
