"""The regional map page (/): what a community assembly looks at, served entirely by the app."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, render_template, url_for
from markupsafe import Markup

from dashboard import mapdata, progress, queries
from dashboard.auth import viewer_required
from dashboard.config import map_options
from dashboard.mapview import MapData, build_map, render_map
from dashboard.security import csp_nonce
from dashboard.store import get_session

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
    sites = mapdata.site_points(session)
    data = MapData(
        communities=communities,
        sites=sites,
        tasks=mapdata.open_tasks(session),
        flows=mapdata.flows(session),
        device_counts=mapdata.device_state_counts(session),
        community_url=lambda slug: url_for("places.community", slug=slug),
        site_url=url_for("api.site", site_id=0),
    )
    fmap = build_map(data, map_options(current_app.config))
    parts = render_map(fmap, lambda path: url_for("static", filename=path), csp_nonce())
    log.debug(
        "map of %s communities and %s sites built in %.3f s",
        len(communities),
        len(sites),
        time.perf_counter() - started,
    )
    shortages = {level: sum(c.level == level for c in communities) for level in queries.LEVELS}
    ranked = sorted(
        communities, key=lambda c: (queries.LEVELS.index(c.level), c.worst.ratio if c.worst else 0)
    )
    noscript = [c for c in ranked if c.level != queries.OK] or ranked
    faults = sum(s.state == "fault" for s in sites)
    return render_template(
        "map.html",
        map_header=Markup(parts.header),  # folium output: user text in it was escaped by mapview
        map_html=Markup(parts.html),
        map_script=Markup(parts.script),
        communities=communities,
        noscript=noscript[:NOSCRIPT_ROWS],
        noscript_more=len(noscript) > NOSCRIPT_ROWS,
        shortages=shortages,
        sites_with_faults=faults,
        sectors=progress.sector_progress(session, communities),
    )
