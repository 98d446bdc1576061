"""The regional map page (/), its site points (/map/sites.json), its basemap (/map/basemap.pmtiles) and area
shapes (/map/areas.geojson): served entirely by the app."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, request, send_file, url_for
from markupsafe import Markup
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from dashboard.map.render import LEGEND_COLOURS, MapData, MapUrls, render_map
from dashboard.read import federation, mapdata, progress, queries
from dashboard.web.auth import viewer_required
from dashboard.web.config import map_options
from dashboard.web.node import current_node
from dashboard.web.security import csp_nonce
from dashboard.web.store import get_session
from gateway.store.models import utcnow

log = logging.getLogger(__name__)
bp = Blueprint("map", __name__)
NOSCRIPT_ROWS = 300  # the no-script table of a 5,000-community region would be a page of its own


@bp.get("/")
@viewer_required
def index() -> str:
    """The map of every community, site, open task and flow, with a no-script table of the communities."""
    started = time.perf_counter()
    session = get_session()
    communities = queries.community_summaries(session)
    urls = MapUrls(
        sites=url_for("map.sites"),
        site=url_for("api.site", site_id=0),
        community=url_for("api.community", slug="_"),
        community_page=url_for("places.community", slug="_"),
        basemap=url_for("map.basemap"),
        areas=url_for("map.areas"),
    )
    node = current_node()
    links = (
        federation.community_links(session, node.federation, node.name, utcnow()) if node is not None else {}
    )
    data = MapData(
        communities=communities,
        tasks=mapdata.open_tasks(session),
        flows=mapdata.good_flows(session),
        urls=urls,
        links=links,
    )
    options = map_options(current_app.config)
    parts = render_map(data, options, lambda path: url_for("static", filename=path), csp_nonce())
    log.debug("map of %s communities built in %.3f s", len(communities), time.perf_counter() - started)
    shortages = {level: sum(c.level == level for c in communities) for level in queries.LEVELS}
    ranked = sorted(
        communities, key=lambda c: (queries.LEVELS.index(c.level), c.worst.ratio if c.worst else 0)
    )
    noscript = [c for c in ranked if c.level != queries.OK] or ranked
    return render_template(
        "map.html",
        map_header=Markup(parts.header),  # folium's frame: no user text goes through folium (render.py)
        map_html=Markup(parts.html),
        map_script=Markup(parts.script),
        map_data=[(name, Markup(text)) for name, text in parts.data],  # script_json: safe in a <script>
        colours=LEGEND_COLOURS,  # the legend (templates/map.html) in the layers' colours
        sites_url=urls.sites,
        communities=communities,
        noscript=noscript[:NOSCRIPT_ROWS],
        noscript_more=len(noscript) > NOSCRIPT_ROWS,
        shortages=shortages,
        sites_with_faults=mapdata.sites_with_fault(session),
        sectors=progress.sector_progress(session, communities),
        links_down=sum(link.down for link in links.values()),
        node=node,
    )


@bp.get("/map/sites.json")
@viewer_required
def sites() -> Response:
    """Every site for the map's clustered layer: {"scale", "states", "points": [lat, lon, state, id, ...]}
    with coordinates as integers of 1/scale degrees and state an index into states (gzip on the way)."""
    if request.args:
        abort(400, description="this address takes no query parameters")
    started = time.perf_counter()
    points = mapdata.site_points(get_session())
    body = json.dumps(
        {"scale": mapdata.COORD_SCALE, "states": mapdata.SITE_STATES, "points": points}, separators=(",", ":")
    )
    log.debug("site points written in %.3f s", time.perf_counter() - started)
    return Response(body, mimetype="application/json", headers={"Cache-Control": "no-cache"})


def file_etag(file: Path) -> str:
    """A served map file's ETag: change time and size (the driver's worker keys its copy by it)."""
    stat = file.stat()
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


def _served_file(key: str, mimetype: str) -> Response:
    """A configured map file, with Range requests answered (206) so the page reads only the parts it needs."""
    if request.args:
        abort(400, description="this address takes no query parameters")
    path = current_app.config.get(key)
    if path is None:
        abort(404, description="this dashboard serves no such map file (its setting is off)")
    file = Path(path)
    stat = file.stat()
    etag = file_etag(file)
    wanted = request.range
    if_range = request.if_range
    if wanted is None or len(wanted.ranges) != 1 or (if_range.etag or etag) != etag:
        response = send_file(file, mimetype=mimetype, conditional=True, max_age=3600, etag=etag)
        response.headers["Accept-Ranges"] = "bytes"
        return response
    span = wanted.range_for_length(stat.st_size)
    if span is None:
        raise RequestedRangeNotSatisfiable(length=stat.st_size)
    start, stop = span
    # A tile reader asks for a header, a directory or a tile: kilobytes. Read just those bytes and close the
    # file at once, rather than hand werkzeug an open file that a read the page cancels may leave open.
    with file.open("rb") as handle:
        handle.seek(start)
        data = handle.read(stop - start)
    response = Response(data, status=206, mimetype=mimetype)
    response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{stat.st_size}"
    response.headers["Accept-Ranges"] = "bytes"
    response.set_etag(etag)
    response.cache_control.max_age = 3600
    response.cache_control.public = True
    return response


@bp.get("/map/basemap.pmtiles")
@viewer_required
def basemap() -> Response:
    """The PMTiles basemap (RHIZOME_BASEMAP: an OpenStreetMap extract, or the sample region's own)."""
    return _served_file("BASEMAP_FILE", "application/vnd.pmtiles")


@bp.get("/map/areas.geojson")
@viewer_required
def areas() -> Response:
    """The areas the map shades by shortage (RHIZOME_MAP_AREAS), matched to communities by name or place."""
    return _served_file("MAP_AREAS_FILE", "application/geo+json")
