"""The regional map: a local basemap, areas shaded by shortage, communities by worst shortage, sites by
sensor state, repair tasks, delivery flows per place pair and good, place names.

Folium builds the frame: the Leaflet map, its scale, the optional tile layer and the fit to the region.
It links only the app's vendored Leaflet and marker-cluster files, set as this map's own `default_js` and
`default_css` (folium's class lists, with their CDN jQuery, Bootstrap and FontAwesome, are never touched).
The app's `static/js/map.js` then draws the four data layers, the legend and the layer control on the map
folium made: the page's script ends with `RhizomeMap.draw(<folium's map variable>, <base layers>)`.

No data passes through folium: branca re-reads every element's script *as a Jinja template*, so a community
named `{{ 7*7 }}` would be evaluated on the server. The layers travel as JSON data blocks
(`<script type="application/json" id="rz-data-NAME">`), and the sites, the layer that reaches 50,000 rows,
come from `/map/sites.json`; map.js puts names into the DOM only as text. The one configured string folium
renders, the tile attribution, goes through `escape_text`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import folium
from markupsafe import escape

from dashboard.read.federation import CommunityLink
from dashboard.read.mapdata import GoodFlow, TaskPoint
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
# The layer builders of RhizomeMap in map.js.
LAYER_KINDS = ("areas", "flows", "communities", "sites", "tasks", "labels")
BASE_LAYER = "Base map"  # the tile layer's name in the layer control
BASEMAP_LAYER = "Offline map"  # the PMTiles basemap's name in it
TOP_FLOWS = 25  # flows drawn at first: the heaviest of the essential goods; the rest behind the filter
# What folium links instead of its CDN defaults (paths under static/), by folium's own names for them.
VENDORED_JS = (
    ("leaflet", "vendor/leaflet/leaflet.js"),
    ("markercluster", "vendor/leaflet.markercluster/leaflet.markercluster.js"),  # the site clusters
    ("protomaps", "vendor/protomaps-leaflet/protomaps-leaflet.js"),  # the PMTiles basemap
)
VENDORED_CSS = (
    ("leaflet_css", "vendor/leaflet/leaflet.css"),
    ("markercluster_css", "vendor/leaflet.markercluster/MarkerCluster.css"),
)
_BRACES = str.maketrans({"{": "&#123;", "}": "&#125;"})  # as entities, Jinja sees no template syntax
_JINJA_SYNTAX = re.compile(r"\{[{%#]")
# A <script src> or <link href> that loads from another host (with a scheme or protocol-relative).
_EXTERNAL_ASSET = re.compile(
    r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:[a-z][a-z0-9+.-]*:)?//""", re.I
)


@dataclass(frozen=True)
class MapOptions:
    """How the map is drawn; the tile URL is None offline (plain background)."""

    tile_url: str | None = None
    tile_attribution: str = "Base map tiles"
    max_zoom: int = 18  # without tiles Leaflet has no max zoom, which marker clustering needs
    basemap: bool = False  # a PMTiles basemap is served at MapUrls.basemap
    basemap_max_zoom: int = 15  # its deepest tiles: deeper zooms draw them enlarged
    basemap_attribution: str = ""
    areas: bool = False  # area shapes (GeoJSON) are served at MapUrls.areas

    def __post_init__(self) -> None:
        # The URL is part of folium's script, which branca re-reads as a Jinja template (see above).
        if self.tile_url and _JINJA_SYNTAX.search(self.tile_url):
            raise ValueError(f"tile URL {self.tile_url!r}: must not contain {{{{, {{% or {{#")


@dataclass(frozen=True)
class MapUrls:
    """Where map.js fetches what the page does not carry; `_` stands for a community slug or site id."""

    sites: str = "/map/sites.json"
    site: str = "/api/sites/0"  # map.js puts a site's id in place of the trailing 0
    community: str = "/api/communities/_"  # a community's popup: its goods and sensors
    community_page: str = "/communities/_"
    basemap: str = "/map/basemap.pmtiles"
    areas: str = "/map/areas.geojson"


@dataclass(frozen=True)
class MapData:
    """Everything the map shows, as plain query results."""

    communities: Sequence[CommunitySummary]
    tasks: Sequence[TaskPoint] = ()
    flows: Sequence[GoodFlow] = ()
    urls: MapUrls = field(default_factory=MapUrls)
    links: Mapping[str, CommunityLink] = field(default_factory=dict)  # on a node: other nodes' communities


@dataclass(frozen=True)
class MapParts:
    """A rendered map for the page template: folium's <head> markup (links, styles), its <div>, the
    script (folium's frame, then map.js drawing on it) and the data blocks, each (name, JSON safe inside a
    <script>)."""

    header: str
    html: str
    script: str
    data: tuple[tuple[str, str], ...]


def escape_text(value: object) -> str:
    """Text folium puts in its script and Leaflet shows as HTML (the tile attribution): HTML-escaped, with
    its braces as entities so that branca's Jinja pass over the script finds no template syntax in it."""
    return str(escape(str(value))).translate(_BRACES)


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
            "assigned": t.assigned,
        }
        for t in tasks
    ]


def flow_rows(flows: Sequence[GoodFlow]) -> list[dict[str, Any]]:
    """Delivery flows for map.js (one per place pair and good), heaviest first, each with its line width
    from its weight against the heaviest."""
    heaviest = max((f.weight_kg for f in flows), default=0.0)
    return [
        {
            "from_name": f.from_name,
            "to_name": f.to_name,
            "from": [round(f.from_lat, 5), round(f.from_lon, 5)],
            "to": [round(f.to_lat, 5), round(f.to_lon, 5)],
            "good": f.good,
            "unit": f.unit,
            "sector": f.sector,
            "essential": f.essential,
            "quantity": round(f.quantity, 2),
            "kg": round(f.weight_kg, 1),
            "width": flow_width(f.weight_kg, heaviest),
            "shipments": f.shipments,
            "moving": f.moving,
        }
        for f in sorted(flows, key=lambda f: -f.weight_kg)
    ]


def link_rows(links: Mapping[str, CommunityLink]) -> dict[str, dict[str, Any]]:
    """On a node: community slug -> {node, down, text} for the communities other nodes serve."""
    return {slug: {"node": link.node, "down": link.down, "text": link.text} for slug, link in links.items()}


def layer_specs(urls: MapUrls, options: MapOptions) -> list[dict[str, Any]]:
    """The layers map.js draws, in drawing order: its builder (kind), the layer control's name, options."""
    layers: list[tuple[str, str, dict[str, Any]]] = []
    if options.areas:
        layers.append(("areas", "Areas (worst shortage)", {"url": urls.areas, "levels": list(LEVELS)}))
    layers += [
        ("flows", "Deliveries (planned and moving)", {"top": TOP_FLOWS}),
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
        ("labels", "Place names", {}),
    ]
    return [{"kind": kind, "name": name, "options": opts} for kind, name, opts in layers]


def build_frame(
    points: Sequence[tuple[float, float]], options: MapOptions, static_url: Callable[[str], str]
) -> tuple[folium.Map, dict[str, str]]:
    """Folium's map fitted to `points`, and its base layers as {name: JS variable} (none offline)."""
    one = len(points) == 1
    fmap = folium.Map(
        location=points[0] if one else None,  # None: folium's [0, 0] at zoom 1, then fitted below
        zoom_start=ONE_PLACE_ZOOM if one else 1,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,  # thousands of circles and lines draw faster on one canvas than as SVG nodes
        minZoom=min_zoom(points),  # a map option: folium's min_zoom only reaches a tile layer
        maxZoom=options.max_zoom,  # without tiles Leaflet has no max zoom, and clustering needs one
        zoomSnap=0.25,  # fit the region to the screen more tightly than whole zoom levels allow
    )
    # This map's own lists: folium's class-level ones are shared by every map in the process.
    fmap.default_js = [(name, static_url(path)) for name, path in VENDORED_JS]
    fmap.default_css = [(name, static_url(path)) for name, path in VENDORED_CSS]
    bases: dict[str, str] = {}
    if options.tile_url:
        tiles = folium.TileLayer(
            options.tile_url,
            attr=escape_text(options.tile_attribution),
            name=BASE_LAYER,
            max_zoom=options.max_zoom,
        )
        tiles.add_to(fmap)
        bases[BASE_LAYER] = tiles.get_name()
    if len(points) > 1:
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        fmap.fit_bounds(
            [[min(lats), min(lons)], [max(lats), max(lons)]], padding=(FIT_PADDING_PX, FIT_PADDING_PX)
        )
    return fmap, bases


def render_map(data: MapData, options: MapOptions, static_url: Callable[[str], str], nonce: str) -> MapParts:
    """The page's map: folium's frame with the page's CSP nonce, map.js's draw call, the data blocks."""
    fmap, bases = build_frame([(c.lat, c.lon) for c in data.communities], options, static_url)
    figure = cast(folium.Figure, fmap.get_root())  # folium.Map puts itself in a Figure when made
    figure.render()  # fills the figure's header, html and script elements
    # Folium's own markup (links, styles, two switches), no data in it: its scripts get the page's nonce.
    header = re.sub(r"<script(?=[\s>])", f'<script nonce="{nonce}"', figure.header.render())
    base_layers = ", ".join(f"{script_json(name)}: {variable}" for name, variable in bases.items())
    script = f"{figure.script.render()}\nRhizomeMap.draw({fmap.get_name()}, {{{base_layers}}});\n"
    html = figure.html.render()
    if _EXTERNAL_ASSET.search(header + html + script):
        raise RuntimeError("folium links a file from outside the app: give the map a vendored copy")
    blocks: dict[str, Any] = {
        "layers": layer_specs(data.urls, options),
        "flows": flow_rows(data.flows),
        "communities": community_rows(data.communities),
        "tasks": task_rows(data.tasks),
    }
    if options.basemap:
        blocks["basemap"] = {
            "name": BASEMAP_LAYER,
            "url": data.urls.basemap,
            "attribution": str(escape(options.basemap_attribution)),  # Leaflet shows it as HTML
            "maxDataZoom": options.basemap_max_zoom,
            "active": not options.tile_url,  # a configured tile server stays the one shown first
        }
    if data.links:  # only on a node: elsewhere the page carries nothing new
        blocks["links"] = link_rows(data.links)
    return MapParts(header, html, script, tuple((name, script_json(value)) for name, value in blocks.items()))
