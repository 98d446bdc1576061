"""Benchmark instance files as routing input: CVRPLIB (`.vrp`) and Li & Lim PDPTW (`.txt`).

Node numbers in and out follow each file: CVRPLIB numbers the depot 1 and customers 2..n, Li & Lim numbers
the depot 0. Internally a node is its row in the distance matrix; `Instance.label` maps back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.contract.errors import InvalidInput
from logistics.routing.data import Request, RoutingInput, Stop, VehicleSpec


@dataclass(frozen=True)
class Instance:
    """A benchmark instance: the routing input and the file's number of each matrix row."""

    data: RoutingInput
    labels: tuple[int, ...]
    kind: str  # "cvrp" or "pdptw"

    def label(self, node: int) -> int:
        """The file's number of a matrix row."""
        return self.labels[node]


def read_instance(path: str | Path) -> Instance:
    """Read a CVRPLIB `.vrp` or Li & Lim `.txt` file; InvalidInput when it is neither or malformed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".vrp" or "NODE_COORD_SECTION" in text:
        return parse_cvrplib(text, path.stem)
    return parse_lilim(text, path.stem)


def euclidean(coords: np.ndarray) -> np.ndarray:
    """All-pairs Euclidean distances."""
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt((diff**2).sum(axis=2))


def parse_cvrplib(text: str, name: str = "") -> Instance:
    """CVRPLIB/TSPLIB text: EUC_2D rounded to the nearest integer, except CMT (unrounded by convention)."""
    header, sections = _tsplib(text)
    name = header.get("NAME", name)
    try:
        size = int(header["DIMENSION"])
        capacity = float(header["CAPACITY"])
        demand = {int(r[0]): float(r[1]) for r in sections["DEMAND_SECTION"]}
    except (KeyError, ValueError, IndexError) as exc:
        raise InvalidInput(f"{name}: not a CVRPLIB file I can read ({exc!r})") from exc
    kind = header.get("EDGE_WEIGHT_TYPE", "EUC_2D")
    depots = [int(r[0]) for r in sections.get("DEPOT_SECTION", [["1"]]) if int(r[0]) > 0] or [1]
    if len(depots) != 1:
        raise InvalidInput(f"{name}: {len(depots)} depots; one is supported")
    numbers = sorted(demand)
    if numbers != list(range(1, size + 1)):
        raise InvalidInput(f"{name}: demands for nodes {numbers[:3]}... but {size} nodes")
    if kind == "EUC_2D":
        try:
            coords = {int(r[0]): (float(r[1]), float(r[2])) for r in sections["NODE_COORD_SECTION"]}
        except (KeyError, ValueError, IndexError) as exc:
            raise InvalidInput(f"{name}: bad NODE_COORD_SECTION ({exc!r})") from exc
        if sorted(coords) != numbers:
            raise InvalidInput(f"{name}: {len(coords)} coordinates for {size} nodes")
        matrix = euclidean(np.array([coords[k] for k in numbers]))
        if not name.upper().startswith("CMT"):
            matrix = np.floor(matrix + 0.5)  # TSPLIB nint
    elif kind == "EXPLICIT":
        matrix = _explicit(
            sections.get("EDGE_WEIGHT_SECTION", []), header.get("EDGE_WEIGHT_FORMAT", ""), size
        )
    else:
        raise InvalidInput(f"{name}: EDGE_WEIGHT_TYPE {kind} is not supported (EUC_2D or EXPLICIT)")
    row = {k: i for i, k in enumerate(numbers)}
    depot = row[depots[0]]
    service = float(header.get("SERVICE_TIME", 0) or 0)
    limit = float(header["DISTANCE"]) if "DISTANCE" in header else math.inf
    requests = [Request(delivery=row[k], load=demand[k], label=str(k)) for k in numbers if row[k] != depot]
    stops = [Stop(service=0.0 if i == depot else service) for i in range(size)] if service else []
    vehicles = [VehicleSpec(start=depot, end=depot, capacity=capacity, count=None, max_duration=limit)]
    data = RoutingInput(matrix, requests, vehicles, stops=stops, name=name)
    return Instance(data, tuple(numbers), "cvrp")


def _tsplib(text: str) -> tuple[dict[str, str], dict[str, list[list[str]]]]:
    """TSPLIB text as its `KEY: value` header (keys upper-cased) and its sections' rows of fields."""
    header: dict[str, str] = {}
    sections: dict[str, list[list[str]]] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line == "EOF":
            continue
        if line.endswith("_SECTION"):
            current = line
            sections[current] = []
        elif ":" in line and current is None:
            key, value = line.split(":", 1)
            header[key.strip().upper()] = value.strip()
        elif current is not None:
            if ":" in line:
                key, value = line.split(":", 1)
                header[key.strip().upper()] = value.strip()
                current = None
            else:
                sections[current].append(line.split())
    return header, sections


def _explicit(rows: list[list[str]], layout: str, size: int) -> np.ndarray:
    """An EXPLICIT edge weight section (FULL_MATRIX, LOWER_ROW or UPPER_ROW) as a symmetric matrix."""
    values = [float(v) for row in rows for v in row]
    matrix = np.zeros((size, size))
    if layout == "FULL_MATRIX" and len(values) == size * size:
        return np.array(values).reshape(size, size)
    pairs = [(i, j) for i in range(size) for j in range(i)] if layout == "LOWER_ROW" else []
    if layout == "UPPER_ROW":
        pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    if not pairs or len(pairs) != len(values):
        raise InvalidInput(f"EDGE_WEIGHT_FORMAT {layout!r} with {len(values)} values for {size} nodes")
    for (i, j), value in zip(pairs, values, strict=True):
        matrix[i, j] = matrix[j, i] = value
    return matrix


def parse_lilim(text: str, name: str = "") -> Instance:
    """Li & Lim PDPTW: `vehicles capacity speed`, then `id x y demand earliest latest service pick drop`."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    try:
        fleet, capacity, speed = int(lines[0][0]), float(lines[0][1]), float(lines[0][2])
        rows = [[float(v) for v in line[:9]] for line in lines[1:]]
    except (ValueError, IndexError) as exc:
        raise InvalidInput(f"{name}: not a Li & Lim file I can read ({exc!r})") from exc
    if any(len(r) != 9 for r in rows) or not rows or speed <= 0:
        raise InvalidInput(f"{name}: every node line needs 9 numbers and the speed must be > 0")
    numbers = [int(r[0]) for r in rows]
    if numbers != list(range(len(rows))):
        raise InvalidInput(f"{name}: nodes must be numbered 0..n in order")
    points = np.array([[r[1], r[2]] for r in rows])
    matrix = euclidean(points)
    stops = [Stop(earliest=r[4], latest=r[5], service=r[6]) for r in rows]
    requests = []
    for r in rows[1:]:
        if r[3] > 0:  # a pickup names its delivery in the last column
            drop = int(r[8])
            if not 0 < drop < len(rows) or int(rows[drop][7]) != int(r[0]):
                raise InvalidInput(f"{name}: pickup {int(r[0])} and delivery {drop} do not name each other")
            requests.append(Request(delivery=drop, load=r[3], pickup=int(r[0]), label=str(int(r[0]))))
    if 2 * len(requests) != len(rows) - 1:
        raise InvalidInput(
            f"{name}: {len(rows) - 1} customer nodes but {len(requests)} pickup-delivery pairs"
        )
    depot = rows[0]
    vehicles = [
        VehicleSpec(start=0, end=0, capacity=capacity, count=fleet, shift_start=depot[4], shift_end=depot[5])
    ]
    data = RoutingInput(matrix, requests, vehicles, stops=stops, duration=matrix / speed, name=name)
    return Instance(data, tuple(numbers), "pdptw")
