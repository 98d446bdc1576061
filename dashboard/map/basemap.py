"""A small PMTiles basemap of a region, made from its vendored areas (used when no OSM extract is given).

A community drops in its own OpenStreetMap extract (a Protomaps basemap build, `.pmtiles`) as the map's
basemap. None can be downloaded here, so vendoring also writes one for the sample region from the shapes it
ships, in the same layer schema (Protomaps basemap v4: `earth`, `water`, `boundaries` with a numeric
`kind_detail` admin level), so the page draws either with the same protomaps-leaflet style.

Build-time only (shapely, mapbox-vector-tile, pmtiles: the `dev` extra); the dashboard just serves the file.
The output is the same bytes for the same shapes: tiles in tile-id order, gzip without timestamps.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import mapbox_vector_tile
import numpy
import shapely
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from shapely import affinity, ops
from shapely.geometry import LineString, MultiLineString, box, shape
from shapely.geometry.base import BaseGeometry

EXTENT = 4096  # MVT grid per tile
BUFFER = 64  # grid units drawn past a tile's edge, so strokes do not end at it
MAX_ZOOM = 12  # protomaps-leaflet overzooms past it (maxDataZoom): ~10 km tiles are plenty for 1:10M shapes
# Sea drawn around the region: wide at the zooms that show a phone's whole screen around it, narrower deeper
# in (where one more degree is hundreds of tiles).
WIDE_MARGIN_DEG, WIDE_UNTIL_ZOOM, MARGIN_DEG = 6.0, 8, 1.0
R = 6378137.0
HALF = math.pi * R  # half the Web Mercator world, in metres
MUNICIPAL = 6  # OSM admin_level of a municipio / county line: drawn thin in the Protomaps styles


def mercator(coords: Any) -> Any:
    """Longitude/latitude rows (an N x 2 array) to Web Mercator metres."""
    lon, lat = coords[:, 0], numpy.clip(coords[:, 1], -85.0511, 85.0511)
    return numpy.column_stack(
        (R * numpy.radians(lon), R * numpy.log(numpy.tan(math.pi / 4 + numpy.radians(lat) / 2)))
    )


def _project(geometry: BaseGeometry) -> BaseGeometry:
    return shapely.transform(geometry, mercator)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """A tile's (minx, miny, maxx, maxy) in Web Mercator metres (y of tiles grows southwards)."""
    size = 2 * HALF / 2**z
    return -HALF + x * size, HALF - (y + 1) * size, -HALF + (x + 1) * size, HALF - y * size


def tile_range(bounds: tuple[float, float, float, float], z: int) -> Iterator[tuple[int, int]]:
    """The (x, y) of every tile at zoom `z` touching lon/lat `bounds`."""
    west, south, east, north = bounds
    n = 2**z

    def column(lon: float) -> int:
        return min(n - 1, max(0, int((lon + 180) / 360 * n)))

    def row(lat: float) -> int:
        rad = math.radians(lat)
        return min(n - 1, max(0, int((1 - math.asinh(math.tan(rad)) / math.pi) / 2 * n)))

    for x in range(column(west), column(east) + 1):
        for y in range(row(north), row(south) + 1):
            yield x, y


def _to_grid(geometry: BaseGeometry, bounds: tuple[float, float, float, float]) -> BaseGeometry:
    """Mercator metres to the tile's grid, y down (the MVT convention)."""
    minx, _, maxx, maxy = bounds
    scale = EXTENT / (maxx - minx)
    return affinity.affine_transform(geometry, [scale, 0, 0, -scale, -minx * scale, maxy * scale])


def encode_tile(land: BaseGeometry, borders: BaseGeometry, z: int, x: int, y: int) -> bytes | None:
    """One tile's earth, water and boundaries as gzipped MVT; None when it holds nothing."""
    bounds = tile_bounds(z, x, y)
    pad = (bounds[2] - bounds[0]) * BUFFER / EXTENT
    clip = box(bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad)
    tolerance = (bounds[2] - bounds[0]) / EXTENT  # one grid unit: finer detail cannot show
    earth = land.intersection(clip).simplify(tolerance)
    water = clip.difference(land).simplify(tolerance)
    lines = borders.intersection(clip).simplify(tolerance)
    layers: list[dict[str, Any]] = []
    for name, geometry, props in (
        ("earth", earth, {"kind": "earth"}),
        ("water", water, {"kind": "ocean"}),
        ("boundaries", lines, {"kind": "county", "kind_detail": MUNICIPAL}),
    ):
        if geometry.is_empty:
            continue
        grid = _to_grid(geometry, bounds)
        layers.append({"name": name, "features": [{"geometry": grid.wkt, "properties": props}]})
    if not layers:
        return None
    options = {
        "extents": EXTENT,
        "y_coord_down": True,
        "on_invalid_geometry": mapbox_vector_tile.encoder.on_invalid_geometry_make_valid,
    }
    return gzip.compress(mapbox_vector_tile.encode(layers, default_options=options), mtime=0)


def build_pmtiles(
    areas: Sequence[dict[str, Any]], borders: Sequence[Sequence[tuple[float, float]]], attribution: str
) -> bytes:
    """The basemap of `areas` (GeoJSON features) and `borders` (lon/lat lines) as one PMTiles archive."""
    land_ll = ops.unary_union([shape(f["geometry"]) for f in areas]).buffer(0)
    west, south, east, north = land_ll.bounds

    def around(margin: float) -> tuple[float, float, float, float]:
        return (west - margin, south - margin, east + margin, north + margin)

    bounds = around(WIDE_MARGIN_DEG)
    land = _project(land_ll)
    lines = _project(MultiLineString([LineString(b) for b in borders if len(b) > 1]))
    tiles: list[tuple[int, bytes]] = []
    for z in range(MAX_ZOOM + 1):
        for x, y in tile_range(around(WIDE_MARGIN_DEG if z <= WIDE_UNTIL_ZOOM else MARGIN_DEG), z):
            data = encode_tile(land, lines, z, x, y)
            if data is not None:
                tiles.append((zxy_to_tileid(z, x, y), data))
    out = io.BytesIO()
    writer = Writer(out)
    for tile_id, data in sorted(tiles):
        writer.write_tile(tile_id, data)
    header: dict[str, Any] = {
        "tile_type": TileType.MVT,
        "tile_compression": Compression.GZIP,
        "min_lon_e7": int(bounds[0] * 1e7),
        "min_lat_e7": int(bounds[1] * 1e7),
        "max_lon_e7": int(bounds[2] * 1e7),
        "max_lat_e7": int(bounds[3] * 1e7),
        "center_zoom": 8,
        "center_lon_e7": int((west + east) / 2 * 1e7),
        "center_lat_e7": int((south + north) / 2 * 1e7),
    }
    metadata = {
        "name": "Rhizome sample basemap",
        "attribution": attribution,
        "vector_layers": [{"id": name, "fields": {}} for name in ("earth", "water", "boundaries")],
    }
    writer.finalize(header, metadata)
    return out.getvalue()


def tile_count(archive: bytes) -> int:
    """How many tiles an archive addresses (its header's count): for the vendoring log and the tests."""
    from pmtiles.tile import deserialize_header

    return int(deserialize_header(archive[:127])["addressed_tiles_count"])


def metadata_of(archive: bytes) -> dict[str, Any]:
    """An archive's JSON metadata."""
    from pmtiles.tile import deserialize_header

    header = deserialize_header(archive[:127])
    raw = archive[header["metadata_offset"] : header["metadata_offset"] + header["metadata_length"]]
    return dict(json.loads(gzip.decompress(raw)))
