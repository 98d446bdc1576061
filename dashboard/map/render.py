"""The regional map: communities by worst shortage, sites by sensor state, repair tasks, delivery flows.

Folium draws the frame (map, tiles, legend, layer control); the data layers are built in the browser by
the app's own `static/js/map.js` (sites clustered, popups only when opened). Their data never passes through
folium: branca renders each element's script *as a Jinja template*, so a community named `{{ 7*7 }}` would
be evaluated on the server. Instead the page carries the small layers as JSON data blocks
(`MapParts.data`, written by the page template) and the sites, the layer that reaches 50,000 rows, come
from `/map/sites.json` as flat arrays. Names reach the DOM only as text. Anything folium itself renders
(the tile attribution) goes through `escape_text`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import folium
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.map import Layer
from folium.template import Template
from markupsafe import escape

from dashboard.map.assets import add_nonce, external_asset_urls, localize_assets
from dashboard.read.mapdata import Flow, TaskPoint, worst_state
from dashboard.read.queries import CRITICAL, LEVELS, OK, SHORT, CommunitySummary, SiteSummary

LEVEL_COLOURS = {CRITICAL: "#d62728", SHORT: "#ff7f0e", OK: "#2ca02c"}
STATE_COLOURS = {"online": "#2ca02c", "fault": "#d62728"}  # offline, stale, unknown, no sensor: grey
GREY = "#7f7f7f"
FLOW_COLOUR = "#1f5fa8"
MIN_FLOW_WIDTH, MAX_FLOW_WIDTH = 1.5, 9.0
# At this zoom the site layer stops clustering: every site is drawn (streets-level view).
DISABLE_CLUSTERING_AT_ZOOM = 13  # ~30 km across: a village's sites are apart; fewer levels to cluster
MARKERCLUSTER_JS = (
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js"
)
MARKERCLUSTER_CSS = "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css"
MIN_RADIUS, MAX_RADIUS = 5.0, 26.0
# Backtick, dollar and backslash would end or interpolate folium's JS template literals; as HTML entities
# they are inert in JavaScript and still display as themselves.
# Braces as entities: folium text is re-read as a Jinja template by branca, where {{ }} would run.
_TEMPLATE_LITERAL = str.maketrans({"`": "&#96;", "$": "&#36;", "\\": "&#92;", "{": "&#123;", "}": "&#125;"})


@dataclass(frozen=True)
class MapOptions:
    """How the map is drawn; the tile URL is None offline (plain background)."""

    tile_url: str | None = None
    tile_attribution: str = "Base map tiles"
    max_zoom: int = 18  # with tiles=None Leaflet has no max zoom, which marker clustering needs


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
    """A rendered map split for a page template: <head> markup, <body> markup, the script, and the layers'
    data as (name, JSON safe inside a <script>) for `<script type="application/json" id="rz-data-NAME">`."""

    header: str
    html: str
    script: str
    data: tuple[tuple[str, str], ...] = ()


def escape_text(value: object) -> str:
    """Escape text for folium popups and tooltips: HTML-escaped and inert inside a JS template literal."""
    return str(escape(str(value))).translate(_TEMPLATE_LITERAL)


def radius(population: int, largest: int) -> float:
    """Marker radius in pixels: area proportional to population (square-root scale)."""
    if largest <= 0:
        return MIN_RADIUS
    return MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * math.sqrt(max(population, 0) / largest)


LAYER_KINDS = ("communities", "sites", "tasks", "flows")  # the functions of RhizomeMap in map.js


def site_state(site: SiteSummary) -> str:
    """One word for a site's sensors: fault if any is faulty, online if all are, else the worst other."""
    return worst_state(d.state for d in site.devices)


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


def jinja_inert_json(text: str) -> str:
    """Compact JSON that Jinja reads as plain text: `{{`, `{%` and `{#` occur only inside its strings
    (an object opens with `{"` or `{}`), where the second character can be a JSON escape instead."""
    return text.replace("{{", "{\\u007b").replace("{%", "{\\u0025").replace("{#", "{\\u0023")


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


class DataLayer(JSCSSMixin, Layer):
    """A layer built in the browser by `RhizomeMap.<kind>(options)` from static/js/map.js.

    Its data is kept out of the folium script on purpose (see the module docstring): `data_json` goes into
    the page's data block `rz-data-<kind>`, and a layer without data fetches its own (the sites).
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = RhizomeMap.{{ this.kind }}({{ this.options_json }});
        RhizomeMap.register({{ this.kind|tojson }}, {{ this.get_name() }}, {{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        kind: str,
        data: Any,
        name: str,
        *,
        options: Mapping[str, Any] | None = None,
        clustered: bool = False,
        show: bool = True,
    ) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "RhizomeLayer"
        if kind not in LAYER_KINDS:
            raise ValueError(f"unknown map layer {kind!r}")
        self.kind = kind
        self.data_json = None if data is None else script_json(data)
        # Options are the app's own values (URLs, zoom levels), never names; made inert for Jinja anyway.
        self.options_json = jinja_inert_json(script_json(dict(options or {})))
        # The plugin's CDN URLs, rewritten to the vendored copies like folium's own (dashboard/map/assets.py).
        self.default_js = [("markerclusterjs", MARKERCLUSTER_JS)] if clustered else []
        self.default_css = [("markerclustercss", MARKERCLUSTER_CSS)] if clustered else []


class Legend(MacroElement):
    """A static legend as a Leaflet control (no user data in it)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var legend = L.control({position: "bottomright"});
            legend.onAdd = function () {
                var div = L.DomUtil.create("div", "rz-legend");
                div.innerHTML = {{ this.html|tojson }};
                return div;
            };
            legend.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "Legend"
        swatch = '<div><i style="background:{}"></i>{}</div>'
        self.html = "".join(
            [
                "<strong>Communities</strong>",
                swatch.format(LEVEL_COLOURS[CRITICAL], "essential good below minimum"),
                swatch.format(LEVEL_COLOURS[SHORT], "other good below minimum"),
                swatch.format(LEVEL_COLOURS[OK], "all goods at or above minimum"),
                "<div><small>circle area: population</small></div>",
                "<strong>Sites</strong>",
                swatch.format(STATE_COLOURS["online"], "sensors online"),
                swatch.format(STATE_COLOURS["fault"], "sensor fault"),
                swatch.format(GREY, "offline, stale, unknown or no sensor"),
                "<div><small>numbered circles: groups of sites, red if one has a fault</small></div>",
                '<div><i class="rz-ring"></i>open repair task</div>',
                f'<div><i class="rz-line" style="background:{FLOW_COLOUR}"></i>delivery; width: weight,'
                " arrow: direction</div>",
            ]
        )


def build_map(data: MapData, options: MapOptions) -> folium.Map:
    """The regional map: community, site, repair-task and flow layers, a legend and a layer control."""
    points = [(c.lat, c.lon) for c in data.communities]  # every site belongs to one
    fmap = folium.Map(
        minZoom=min_zoom(points),  # a map option: folium's min_zoom only reaches a tile layer (none here)
        location=points[0] if len(points) == 1 else None,
        zoom_start=12 if len(points) == 1 else 2,
        tiles=None,
        prefer_canvas=True,  # thousands of circles and lines draw faster on one canvas than as SVG nodes
        control_scale=True,
        maxZoom=options.max_zoom,  # with tiles=None Leaflet has no max zoom, and clustering needs one
        zoomSnap=0.25,  # fit the region to the screen more tightly than whole zoom levels allow
    )
    if options.tile_url:
        folium.TileLayer(
            tiles=options.tile_url,
            attr=escape_text(options.tile_attribution),
            name="Base map",
            max_zoom=options.max_zoom,
        ).add_to(fmap)
    if len(points) > 1:
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        fmap.fit_bounds([[min(lats), min(lons)], [max(lats), max(lons)]], padding=(20, 20))

    urls = data.urls
    DataLayer("flows", flow_rows(data.flows), "Deliveries (planned and moving)").add_to(fmap)
    DataLayer(
        "communities",
        community_rows(data.communities),
        "Communities (worst shortage)",
        options={"levels": list(LEVELS), "detailUrl": urls.community, "pageUrl": urls.community_page},
    ).add_to(fmap)
    DataLayer(
        "sites",
        None,  # fetched from urls.sites: the page does not wait for 50,000 points
        "Sites and sensors",
        options={
            "disableClusteringAtZoom": min(DISABLE_CLUSTERING_AT_ZOOM, options.max_zoom),
            "url": urls.sites,
            "siteUrl": urls.site,
        },
        clustered=True,
    ).add_to(fmap)
    DataLayer("tasks", task_rows(data.tasks), "Open repair tasks").add_to(fmap)
    Legend().add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    return fmap


def render_map(fmap: folium.Map, static_url: Callable[[str], str], nonce: str) -> MapParts:
    """Render `fmap` into page parts, its CDN links pointing at the app's vendored copies."""
    figure = fmap.get_root()
    figure.render()  # fills the figure's header, html and script elements
    header = add_nonce(localize_assets(figure.header.render(), static_url), nonce)
    data = tuple(
        (child.kind, child.data_json)
        for child in fmap._children.values()
        if isinstance(child, DataLayer) and child.data_json is not None
    )
    parts = MapParts(header, figure.html.render(), figure.script.render(), data)
    leftover = external_asset_urls(parts.html) + external_asset_urls(parts.script)
    if leftover:
        raise RuntimeError(f"map body links external assets: {leftover}")
    return parts
