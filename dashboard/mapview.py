"""The regional map: communities sized by population, coloured by their worst shortage; sites by sensor state.

Builds a folium map from query results (never the ORM) and renders it into parts for a page template, with
every asset served by the app. Folium 0.20 puts popup and tooltip text raw into JavaScript template literals,
so every user-supplied string goes through `escape_text` first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import folium
from branca.element import MacroElement
from folium.template import Template
from markupsafe import escape

from dashboard.assets import add_nonce, external_asset_urls, localize_assets
from dashboard.queries import CRITICAL, LEVELS, OK, SHORT, CommunitySummary, GoodLevel, SiteSummary

LEVEL_COLOURS = {CRITICAL: "#d62728", SHORT: "#ff7f0e", OK: "#2ca02c"}
STATE_COLOURS = {"online": "#2ca02c", "fault": "#d62728"}  # offline, stale, unknown, no sensor: grey
GREY = "#7f7f7f"
MIN_RADIUS, MAX_RADIUS = 5.0, 26.0
# Backtick, dollar and backslash would end or interpolate folium's JS template literals; as HTML entities
# they are inert in JavaScript and still display as themselves.
_TEMPLATE_LITERAL = str.maketrans({"`": "&#96;", "$": "&#36;", "\\": "&#92;"})


@dataclass(frozen=True)
class MapOptions:
    """How the map is drawn; the tile URL is None offline (plain background)."""

    tile_url: str | None = None
    tile_attribution: str = "Base map tiles"
    max_zoom: int = 18  # with tiles=None Leaflet has no max zoom, which marker clustering needs


@dataclass(frozen=True)
class MapParts:
    """A rendered map split for a page template: <head> markup, <body> markup and the script."""

    header: str
    html: str
    script: str


def escape_text(value: object) -> str:
    """Escape text for folium popups and tooltips: HTML-escaped and inert inside a JS template literal."""
    return str(escape(str(value))).translate(_TEMPLATE_LITERAL)


def radius(population: int, largest: int) -> float:
    """Marker radius in pixels: area proportional to population (square-root scale)."""
    if largest <= 0:
        return MIN_RADIUS
    return MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * math.sqrt(max(population, 0) / largest)


def site_state(site: SiteSummary) -> str:
    """One word for a site's sensors: fault if any is faulty, online if all are, else the worst other."""
    states = {d.state for d in site.devices}
    if not states:
        return "no sensor"
    for state in ("fault", "offline", "stale", "unknown"):
        if state in states:
            return state
    return "online"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def community_popup(community: CommunitySummary) -> str:
    """Popup HTML: name, population and the stock-vs-need table, shortages first; all text escaped."""
    needed = sorted(
        (g for g in community.goods if g.minimum is not None),
        key=lambda g: (LEVELS.index(g.level), g.ratio, g.good),
    )
    rows = "".join(_need_row(g) for g in needed) or '<tr><td colspan="4">no need levels set</td></tr>'
    return (
        f'<div class="rz-popup"><strong>{escape_text(community.name)}</strong>'
        f"<div>population {_number(community.population)}</div>"
        '<table class="rz-table"><tr><th>good</th><th>stock</th><th>min</th><th>target</th></tr>'
        f"{rows}</table></div>"
    )


def _need_row(good: GoodLevel) -> str:
    return (
        f'<tr class="rz-{good.level}"><td>{escape_text(good.name)}</td>'
        f"<td>{_number(good.quantity)} {escape_text(good.unit)}</td>"
        f"<td>{_number(good.minimum)}</td><td>{_number(good.target)}</td></tr>"
    )


def site_popup(site: SiteSummary) -> str:
    """Popup HTML: site, community and each sensor's state and last message; all text escaped."""
    rows = "".join(
        f"<tr><td>{escape_text(d.slug)}</td><td>{escape_text(d.kind)}</td><td>{escape_text(d.state)}</td>"
        f"<td>{d.last_seen_at.strftime('%Y-%m-%d %H:%M UTC') if d.last_seen_at else 'never'}</td></tr>"
        for d in site.devices
    )
    table = (
        '<table class="rz-table"><tr><th>sensor</th><th>kind</th><th>state</th><th>last seen</th></tr>'
        f"{rows}</table>"
        if rows
        else "<div>no sensors</div>"
    )
    return (
        f'<div class="rz-popup"><strong>{escape_text(site.name)}</strong>'
        f"<div>{escape_text(site.kind)} · {escape_text(site.community_name)}</div>{table}</div>"
    )


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
            ]
        )


def build_map(
    communities: Sequence[CommunitySummary], sites: Sequence[SiteSummary], options: MapOptions
) -> folium.Map:
    """The regional map with a community layer, a site layer, a legend and a layer control."""
    points = [(c.lat, c.lon) for c in communities] or [(s.lat, s.lon) for s in sites]
    fmap = folium.Map(
        location=points[0] if len(points) == 1 else None,
        zoom_start=12 if len(points) == 1 else 2,
        tiles=None,
        prefer_canvas=True,  # thousands of circles draw faster on one canvas than as SVG nodes
        control_scale=True,
        maxZoom=options.max_zoom,
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

    community_layer = folium.FeatureGroup(name="Communities (worst shortage)").add_to(fmap)
    largest = max((c.population for c in communities), default=0)
    for community in sorted(communities, key=lambda c: -c.population):  # small circles drawn on top
        colour = LEVEL_COLOURS[community.level]
        folium.CircleMarker(
            location=(community.lat, community.lon),
            radius=radius(community.population, largest),
            color=colour,
            weight=1,
            fill=True,
            fill_color=colour,
            fill_opacity=0.6,
            popup=folium.Popup(community_popup(community), max_width=360),
            tooltip=folium.Tooltip(escape_text(community.name)),
        ).add_to(community_layer)

    site_layer = folium.FeatureGroup(name="Sites and sensors").add_to(fmap)
    for site in sites:
        colour = STATE_COLOURS.get(site_state(site), GREY)
        folium.CircleMarker(
            location=(site.lat, site.lon),
            radius=4,
            color="#333333",
            weight=1,
            fill=True,
            fill_color=colour,
            fill_opacity=0.9,
            popup=folium.Popup(site_popup(site), max_width=420),
            tooltip=folium.Tooltip(escape_text(site.name)),
        ).add_to(site_layer)

    Legend().add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    return fmap


def render_map(fmap: folium.Map, static_url: Callable[[str], str], nonce: str) -> MapParts:
    """Render `fmap` into page parts, its CDN links pointing at the app's vendored copies."""
    figure = fmap.get_root()
    figure.render()  # fills the figure's header, html and script elements
    header = add_nonce(localize_assets(figure.header.render(), static_url), nonce)
    parts = MapParts(header, figure.html.render(), figure.script.render())
    leftover = external_asset_urls(parts.html) + external_asset_urls(parts.script)
    if leftover:
        raise RuntimeError(f"map body links external assets: {leftover}")
    return parts
