"""The regional map as data: communities by worst shortage, sites by sensor state, repair tasks, flows.

The app's own `static/js/map.js` draws everything (the Leaflet map, tiles, scale, legend, layer control and
the four data layers); this module only turns query results into the JSON it reads. The page carries the
frame and the small layers as JSON data blocks (`<script type="application/json" id="rz-data-NAME">`), and
the sites, the layer that reaches 50,000 rows, come from `/map/sites.json` as flat arrays. No name is ever
part of a script: map.js reads the blocks with JSON.parse and puts names in the DOM only as text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import escape

from dashboard.read.mapdata import Flow, TaskPoint
from dashboard.read.queries import CRITICAL, LEVELS, OK, SHORT, CommunitySummary

LEVEL_COLOURS = {CRITICAL: "#d62728", SHORT: "#ff7f0e", OK: "#2ca02c"}
STATE_COLOURS = {"online": "#2ca02c", "fault": "#d62728"}  # offline, stale, unknown, no sensor: grey
GREY = "#7f7f7f"
FLOW_COLOUR = "#1f5fa8"
LEGEND_COLOURS = {**LEVEL_COLOURS, **STATE_COLOURS, "grey": GREY, "flow": FLOW_COLOUR}  # map.html's swatches
MIN_FLOW_WIDTH, MAX_FLOW_WIDTH = 1.5, 9.0
# At this zoom the site layer stops clustering: every site is drawn (streets-level view).
DISABLE_CLUSTERING_AT_ZOOM = 13  # ~30 km across: a village's sites are apart; fewer levels to cluster
MIN_RADIUS, MAX_RADIUS = 5.0, 26.0
FIT_PADDING_PX = 20
ONE_PLACE_ZOOM = 12  # a region of one community is shown around it at this zoom
LAYER_KINDS = ("communities", "sites", "tasks", "flows")  # the layer builders of RhizomeMap in map.js


@dataclass(frozen=True)
class MapOptions:
    """How the map is drawn; the tile URL is None offline (plain background)."""

    tile_url: str | None = None
    tile_attribution: str = "Base map tiles"
    max_zoom: int = 18  # without tiles Leaflet has no max zoom, which marker clustering needs


@dataclass(frozen=True)
class MapUrls:
    """Where map.js fetches what the page does not carry; `_` stands for a community slug or site id."""

    sites: str = "/map/sites.json"
    site: str = "/api/sites/0"  # map.js puts a site's id in place of the trailing 0
    community: str = "/api/communities/_"  # a community's popup: its goods and sensors
    community_page: str = "/communities/_"


@dataclass(frozen=True)
class MapData:
    """Everything the map shows, as plain query results."""

    communities: Sequence[CommunitySummary]
    tasks: Sequence[TaskPoint] = ()
    flows: Sequence[Flow] = ()
    urls: MapUrls = field(default_factory=MapUrls)


@dataclass(frozen=True)
class MapParts:
    """The map's data blocks for a page template, each (name, JSON safe inside a <script>), in page order.

    `map` is the frame (view, tiles, layers in drawing order); the others are the layers map.js reads.
    """

    data: tuple[tuple[str, str], ...]


def radius(population: int, largest: int) -> float:
    """Marker radius in pixels: area proportional to population (square-root scale)."""
    if largest <= 0:
        return MIN_RADIUS
    return MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * math.sqrt(max(population, 0) / largest)


def min_zoom(points: Sequence[tuple[float, float]]) -> int:
    """How far out one may zoom: the region on a phone, then 2 more levels (each level also costs the site
    clustering work on every marker, so levels nobody uses are not computed)."""
    if len(points) < 2:
        return 1
    span = max(
        max(p[1] for p in points) - min(p[1] for p in points),
        max(p[0] for p in points) - min(p[0] for p in points),
    )
    fit = math.log2(400 * 360 / (256 * max(span, 1e-6)))  # the zoom at which the span fills ~400 px
    return max(1, min(12, math.floor(fit) - 2))


def flow_width(weight_kg: float, heaviest_kg: float) -> float:
    """Line width in pixels: area-like (square-root) scale of the flow's weight against the heaviest."""
    if heaviest_kg <= 0:
        return MIN_FLOW_WIDTH
    share = math.sqrt(max(weight_kg, 0.0) / heaviest_kg)
    return round(MIN_FLOW_WIDTH + (MAX_FLOW_WIDTH - MIN_FLOW_WIDTH) * share, 2)


def script_json(value: Any) -> str:
    """JSON safe inside an inline <script>: no character of it can close the tag or start markup."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def community_rows(communities: Sequence[CommunitySummary]) -> list[list[Any]]:
    """Communities for map.js as [slug, name, lat, lon, radius, level index], largest first.

    Goods, sensors and tasks come with the popup (GET /api/communities/<slug>) when someone opens it, so
    a 5,000-community page carries ~70 bytes per community instead of its whole stock table.
    """
    largest = max((c.population for c in communities), default=0)
    return [
        [
            c.slug,
            c.name,
            round(c.lat, 6),
            round(c.lon, 6),
            round(radius(c.population, largest), 2),
            LEVELS.index(c.level),
        ]
        for c in sorted(communities, key=lambda c: -c.population)  # small circles drawn on top
    ]


def task_rows(tasks: Sequence[TaskPoint]) -> list[dict[str, Any]]:
    """Open repair tasks for map.js (also listed in their community's popup, by slug)."""
    return [
        {
            "id": t.id,
            "title": t.title,
            "status": t.status,
            "urgency": t.urgency,
            "site_name": t.site_name,
            "community": t.community,
            "community_name": t.community_name,
            "lat": t.lat,
            "lon": t.lon,
            "assignee": t.assignee,
        }
        for t in tasks
    ]


def flow_rows(flows: Sequence[Flow]) -> list[dict[str, Any]]:
    """Delivery flows for map.js, each with its width from its weight."""
    heaviest = max((f.weight_kg for f in flows), default=0.0)
    return [
        {
            "from_name": f.from_name,
            "to_name": f.to_name,
            "from_lat": f.from_lat,
            "from_lon": f.from_lon,
            "to_lat": f.to_lat,
            "to_lon": f.to_lon,
            "width": flow_width(f.weight_kg, heaviest),
            "moving": any(g.status == "picked_up" for g in f.goods),
            "goods": [
                {"name": g.name, "quantity": g.quantity, "unit": g.unit, "status": g.status} for g in f.goods
            ],
        }
        for f in flows
    ]


def _view(points: Sequence[tuple[float, float]], options: MapOptions) -> dict[str, Any]:
    """Leaflet map options and the bounds to fit: the region's box, or one place at ONE_PLACE_ZOOM."""
    one = len(points) == 1
    view: dict[str, Any] = {
        "center": list(points[0]) if one else [0.0, 0.0],
        "zoom": ONE_PLACE_ZOOM if one else 1,
        "zoomControl": True,
        "preferCanvas": True,  # thousands of circles and lines draw faster on one canvas than as SVG nodes
        "minZoom": min_zoom(points),
        "maxZoom": options.max_zoom,  # without tiles Leaflet has no max zoom, and clustering needs one
        "zoomSnap": 0.25,  # fit the region to the screen more tightly than whole zoom levels allow
    }
    bounds = None
    if len(points) > 1:
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        bounds = [[min(lats), min(lons)], [max(lats), max(lons)]]
    return {"map": view, "bounds": bounds, "padding": [FIT_PADDING_PX, FIT_PADDING_PX]}


def _tiles(options: MapOptions) -> dict[str, Any] | None:
    """The base map layer, or None offline. Leaflet shows the attribution as HTML: it is escaped here."""
    if not options.tile_url:
        return None
    return {
        "name": "Base map",
        "url": options.tile_url,
        "options": {
            "maxZoom": options.max_zoom,
            "maxNativeZoom": options.max_zoom,
            "attribution": str(escape(options.tile_attribution)),
        },
    }


def map_frame(data: MapData, options: MapOptions) -> dict[str, Any]:
    """What map.js builds the map from: the view, the tiles and the layers in drawing order."""
    points = [(c.lat, c.lon) for c in data.communities]  # every site belongs to one
    urls = data.urls
    layers = [
        ("flows", "Deliveries (planned and moving)", {}),
        (
            "communities",
            "Communities (worst shortage)",
            {"levels": list(LEVELS), "detailUrl": urls.community, "pageUrl": urls.community_page},
        ),
        (
            "sites",  # fetched from urls.sites: the page does not wait for 50,000 points
            "Sites and sensors",
            {
                "disableClusteringAtZoom": min(DISABLE_CLUSTERING_AT_ZOOM, options.max_zoom),
                "url": urls.sites,
                "siteUrl": urls.site,
            },
        ),
        ("tasks", "Open repair tasks", {}),
    ]
    return _view(points, options) | {
        "tiles": _tiles(options),
        "layers": [{"kind": kind, "name": name, "options": opts} for kind, name, opts in layers],
    }


def render_map(data: MapData, options: MapOptions) -> MapParts:
    """The page's data blocks: the frame first, then the layers that travel with the page."""
    blocks = {
        "map": map_frame(data, options),
        "flows": flow_rows(data.flows),
        "communities": community_rows(data.communities),
        "tasks": task_rows(data.tasks),
    }
    return MapParts(tuple((name, script_json(value)) for name, value in blocks.items()))
