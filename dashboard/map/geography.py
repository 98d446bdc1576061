"""A region's areas (municipios, counties) as GeoJSON, cut from a TopoJSON atlas at vendoring time.

The map's choropleth and the generated basemap need polygons the dashboard can serve with no internet. The
npm packages `us-atlas` (U.S. Census Bureau shapes, public domain) and `world-atlas` (Natural Earth, public
domain) ship them as TopoJSON; this module decodes TopoJSON with the standard library only (no topojson
client in the page) and keeps the areas of one region, by id prefix (FIPS "72" is Puerto Rico).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Ring = list[tuple[float, float]]
DIGITS = 4  # ~10 m: finer than the 1:10,000,000 atlas the shapes come from


@dataclass(frozen=True)
class AreaSource:
    """Which areas of which atlas file make a region's shapes."""

    region: str  # the name of the output files: geo/<region>.geojson, geo/<region>.pmtiles
    package: str  # npm package holding the atlas
    atlas: str  # file inside the package
    layer: str  # TopoJSON object holding the areas
    id_prefix: str  # areas whose id starts with it (a state's FIPS code)
    licence: str  # what the shapes are, for MANIFEST.json


def decode_arcs(topology: dict[str, Any]) -> list[Ring]:
    """Every arc in longitude/latitude: TopoJSON stores them delta-encoded on a quantized grid."""
    transform = topology.get("transform")
    arcs: list[Ring] = []
    for arc in topology["arcs"]:
        if transform is None:
            arcs.append([(float(p[0]), float(p[1])) for p in arc])
            continue
        (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
        x = y = 0
        points: Ring = []
        for dx, dy, *_ in arc:
            x, y = x + dx, y + dy
            points.append((round(x * sx + tx, DIGITS), round(y * sy + ty, DIGITS)))
        arcs.append(points)
    return arcs


def ring(indexes: Sequence[int], arcs: Sequence[Ring]) -> Ring:
    """One closed ring from its arcs; a negative index (~i) is arc i reversed, each arc after the first
    starting where the last ended."""
    points: Ring = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc if not points else arc[1:])
    return points


def polygons(geometry: dict[str, Any]) -> list[list[list[int]]]:
    """A Polygon's or MultiPolygon's arc indexes as a list of polygons (each a list of rings)."""
    if geometry.get("type") == "Polygon":
        return [geometry["arcs"]]
    if geometry.get("type") == "MultiPolygon":
        return list(geometry["arcs"])
    return []


def chosen_areas(topology: dict[str, Any], layer: str, id_prefix: str) -> list[dict[str, Any]]:
    """The geometries of `layer` whose id starts with `id_prefix`, by id."""
    geometries = topology["objects"][layer]["geometries"]
    return sorted(
        (g for g in geometries if str(g.get("id", "")).startswith(id_prefix)), key=lambda g: str(g["id"])
    )


def area_features(topology: dict[str, Any], layer: str, id_prefix: str) -> list[dict[str, Any]]:
    """The areas of `layer` whose id starts with `id_prefix`, as GeoJSON features {id, name}, by id."""
    arcs = decode_arcs(topology)
    features = []
    for geometry in chosen_areas(topology, layer, id_prefix):
        shape = [[ring(r, arcs) for r in polygon] for polygon in polygons(geometry)]
        if not shape:
            continue
        features.append(
            {
                "type": "Feature",
                "id": str(geometry["id"]),
                "properties": {"name": str(geometry.get("properties", {}).get("name", ""))},
                "geometry": {"type": "MultiPolygon", "coordinates": shape},
            }
        )
    return features


def inner_borders(topology: dict[str, Any], layer: str, id_prefix: str) -> list[Ring]:
    """The lines between two of the chosen areas (an arc two of them share): the municipal boundaries,
    without the coastline, which the land's edge already draws."""
    used: Counter[int] = Counter()
    for geometry in chosen_areas(topology, layer, id_prefix):
        for polygon in polygons(geometry):
            for indexes in polygon:
                used.update({i if i >= 0 else ~i for i in indexes})
    arcs = decode_arcs(topology)
    return [arcs[i] for i in sorted(used) if used[i] > 1]


def feature_collection(features: Iterable[dict[str, Any]], source: str) -> dict[str, Any]:
    """A GeoJSON FeatureCollection, naming where its shapes came from."""
    return {"type": "FeatureCollection", "source": source, "features": list(features)}
