"""Imports flow one way: devices -> contract; gateway owns the store; logistics solvers are pure;
nothing imports dashboard."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "logistics", "dashboard", "devices")
# logistics modules allowed to touch the store: the loader (ORM) and the process that owns the session.
# logistics processes own the session (and the planner's MQTT wake-ups); the loaders are the only ORM users.
LOGISTICS_PROCESS_MODULES = {"service.py", "cli.py", "vrp_command.py"}
LOGISTICS_SOLVER_PACKAGES = {"common", "allocation", "routing", "repairs", "tasks"}


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


def is_contract(name: str) -> bool:
    """`name` is the contract package or one of its modules (or a name imported from one)."""
    return name in ("gateway", "gateway.contract") or name.startswith("gateway.contract.")


@pytest.mark.parametrize("path", files("devices"), ids=lambda p: str(p.relative_to(ROOT)))
def test_devices_use_only_the_stdlib_paho_and_the_contract(path: Path) -> None:
    """devices/cli.py alone also uses click (it adapts the package to the `rhizome` command, taking the
    Settings from the click context duck-typed); no device module imports the gateway beyond the contract."""
    allowed_third_party = {"paho", "click"} if path == ROOT / "devices" / "cli.py" else {"paho"}
    for name in imports_of(path):
        if top(name) == "gateway":
            assert is_contract(name), f"{path}: {name}"
        elif top(name) != "devices":
            assert top(name) in sys.stdlib_module_names or top(name) in allowed_third_party, f"{path}: {name}"


@pytest.mark.parametrize("path", files("gateway"), ids=lambda p: str(p.relative_to(ROOT)))
def test_gateway_imports_neither_logistics_nor_dashboard(path: Path) -> None:
    assert not {top(n) for n in imports_of(path)} & {"logistics", "dashboard", "devices"}


CONTRACT_MODULES = sorted(
    p
    for p in (ROOT / "gateway" / "contract").rglob("*.py")
    if p.name != "client.py"  # client.py: paho
)


@pytest.mark.parametrize("path", CONTRACT_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_protocol_is_stdlib_only(path: Path) -> None:
    """The contract (topics, payloads, events, errors...) imports only the stdlib and itself, so devices
    and the pure planners can use it without the gateway's dependencies."""
    for name in imports_of(path):
        if top(name) == "gateway":
            assert is_contract(name) and not name.startswith("gateway.contract.client"), f"{path}: {name}"
        else:
            assert top(name) in sys.stdlib_module_names or name == "__future__", f"{path}: {name}"


def test_the_contract_has_its_modules() -> None:
    assert {p.name for p in CONTRACT_MODULES} >= {"__init__.py", "errors.py"}, CONTRACT_MODULES


@pytest.mark.parametrize("path", files("logistics"), ids=lambda p: str(p.relative_to(ROOT)))
def test_logistics_solvers_are_pure(path: Path) -> None:
    names = imports_of(path)
    tops = {top(n) for n in names}
    rel = path.relative_to(ROOT / "logistics")
    assert not tops & {"flask", "dashboard", "folium", "bench"}, path
    if rel.parts[0] in LOGISTICS_SOLVER_PACKAGES or (rel.name == "__init__.py" and len(rel.parts) == 1):
        assert not tops & {"sqlalchemy", "paho"}, f"{path}: a solver touches the store or the broker"
        gateway = {n for n in names if top(n) == "gateway"}
        assert gateway <= {"gateway.contract.errors"} | {
            n for n in gateway if n.startswith("gateway.contract.errors.")
        }, f"{path}: a solver may import only the error tree from the gateway: {gateway}"
    elif rel.parts[0] == "loaders":
        assert "paho" not in tops, path
    else:
        assert rel.name in LOGISTICS_PROCESS_MODULES, f"{path}: a new kind of logistics module"
    if rel.parts[0] != "loaders":
        assert not any(n.startswith("gateway.store.models") for n in names), f"{path}: ORM outside loaders"


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


# --- lifecycle rooms: each lifecycle writes through its one module --------------------------------------

RUNTIME = [p for pkg in (*PACKAGES, "bench") for p in files(pkg)]
STORE = ROOT / "gateway" / "store"
READ_MODELS = sorted((ROOT / "dashboard" / "read").glob("*.py"))
INSERTS = {"insert", "sqlite_insert", "pg_insert"}
SESSION_WRITES = {"add", "delete", "merge"}  # on a session; a set's add is fine
ALWAYS_WRITES = {
    "add_all",
    "flush",
    "commit",
    "bulk_save_objects",
    "bulk_insert_mappings",
    "bulk_update_mappings",
}
SQL_WRITES = {"insert", "update", "delete"}


def tree_of(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"))


def names_in(node: ast.AST) -> set[str]:
    """Every bare name and attribute name in an expression."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
    return found


def called(call: ast.Call) -> str | None:
    """The name a call calls: `f` for f(...) and x.f(...)."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def rows_written(path: Path, model: str) -> list[int]:
    """Lines that construct `model` rows: Model(...), insert(Model...), Model.__table__.insert()."""
    lines = []
    for node in ast.walk(tree_of(path)):
        if not isinstance(node, ast.Call):
            continue
        name = called(node)
        inserted = name in INSERTS and bool(node.args) and model in names_in(node.args[0])
        on_table = (
            name == "insert" and isinstance(node.func, ast.Attribute) and model in names_in(node.func.value)
        )
        if name == model or inserted or on_table:
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    ("model", "home"),
    [
        ("StockLedgerEntry", STORE / "stock.py"),
        ("OutboxMessage", STORE / "outbox.py"),
        ("HoursEntry", STORE / "hours.py"),
        ("Decline", STORE / "declines.py"),
    ],
)
def test_ledger_rows_and_outbox_messages_have_one_writer(model: str, home: Path) -> None:
    assert rows_written(home, model), f"{home} no longer writes {model}: update this rule"
    elsewhere = {
        str(p.relative_to(ROOT)): lines for p in RUNTIME if p != home and (lines := rows_written(p, model))
    }
    assert not elsewhere, f"only {home.relative_to(ROOT)} may construct {model}: {elsewhere}"


def writes(path: Path) -> list[str]:
    """What in a module writes to the store: session.add/delete/merge, flush/commit, SQL insert/update/delete
    (imported from SQLAlchemy or as text)."""
    found = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"imports {a.name}" for a in node.names if a.name in SQL_WRITES]
        if not isinstance(node, ast.Call):
            continue
        name = called(node)
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        on_session = receiver is not None and any("session" in n.lower() for n in names_in(receiver))
        sql_call = name in SQL_WRITES and isinstance(node.func, ast.Name)
        if name in ALWAYS_WRITES or (name in SESSION_WRITES and on_session) or sql_call:
            found.append(f"line {node.lineno}: {name}()")
        elif name == "text" and node.args and isinstance(node.args[0], ast.Constant):
            sql = str(node.args[0].value).lstrip().lower()
            if sql.startswith(("insert", "update", "delete", "create", "drop", "alter")):
                found.append(f"line {node.lineno}: text({sql[:20]!r})")
    return found


@pytest.mark.parametrize("path", READ_MODELS, ids=lambda p: str(p.relative_to(ROOT)))
def test_read_models_never_write(path: Path) -> None:
    assert not writes(path), f"{path.relative_to(ROOT)} is a read model but writes: {writes(path)}"


def test_the_write_check_sees_writes() -> None:
    assert writes(STORE / "outbox.py") and writes(STORE / "stock.py") and writes(STORE / "tasks.py")


def literal_statuses(path: Path) -> list[int]:
    """Lines that assign a bare string to a `.status` attribute (also in a tuple assignment)."""
    lines = []
    for node in ast.walk(tree_of(path)):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs: list[tuple[ast.expr, ast.expr]] = [(target, node.value)]
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(target.elts, node.value.elts, strict=False))
            for left, right in pairs:
                is_status = isinstance(left, ast.Attribute) and left.attr == "status"
                if is_status and isinstance(right, ast.Constant) and isinstance(right.value, str):
                    lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "path", [p for p in RUNTIME if STORE not in p.parents], ids=lambda p: str(p.relative_to(ROOT))
)
def test_statuses_change_only_through_their_lifecycle_module(path: Path) -> None:
    """Outside gateway/store a status is never set from a bare string: the lifecycle modules (tasks,
    deliveries) move it by their transition tables, with the vocabulary's enums."""
    assert not literal_statuses(path), (
        f"{path.relative_to(ROOT)}: .status = '...' on lines {literal_statuses(path)}"
    )


def test_the_status_check_sees_a_literal(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'task.status = "open"\nshipment.status, shipment.why = "failed", why\nok.status = S.OPEN\n'
    )
    assert literal_statuses(sample) == [1, 2]


@pytest.mark.parametrize(
    "path", [p for pkg in PACKAGES for p in files(pkg)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_runtime_packages_never_import_the_harness(path: Path) -> None:
    """bench/ (benchmarks, the week harness, synthetic generators) is not installed: runtime code cannot lean
    on it, and the week harness reaches the system only as its users do (processes, MQTT, HTTP)."""
    assert "bench" not in {top(n) for n in imports_of(path)}, path


def test_the_harness_is_not_installed() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not [name for name in include if name.startswith("bench")], include
