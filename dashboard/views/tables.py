"""The shortages table (sortable and filterable in the browser), sector progress, and the hours the network
gives by sector (sums only: no public page names who works where)."""

from __future__ import annotations

from flask import Blueprint, render_template

from dashboard.read import hours, progress
from dashboard.web.auth import viewer_required
from dashboard.web.store import get_session

bp = Blueprint("tables", __name__)


@bp.get("/shortages")
@viewer_required
def shortages() -> str:
    """Every good below a community's minimum, with sector progress, the year's hours and download links."""
    session = get_session()
    return render_template(
        "shortages.html",
        shortages=progress.shortages(session),
        sectors=progress.sector_progress(session),
        hours=hours.network_hours(session),
    )
