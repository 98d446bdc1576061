"""A community's page (stock against needs, stock charts, sites) and a site's telemetry charts."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, render_template, request

from dashboard.read import board as board_read
from dashboard.read import history, mapdata, places, progress, queries
from dashboard.views import charts
from dashboard.web.auth import viewer_required
from dashboard.web.store import get_session
from gateway.contract.topics import is_slug
from gateway.store.models import utcnow

bp = Blueprint("places", __name__)
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def _window(default: str) -> tuple[str, timedelta]:
    name = request.args.get("window", default)
    if name not in WINDOWS:
        abort(400, description=f"window must be one of {', '.join(WINDOWS)}")
    return name, WINDOWS[name]


def _community(slug: str) -> places.Place:
    found = places.find_community(get_session(), slug) if is_slug(slug) else None
    if found is None:
        abort(404, description="no such community")
    return found


@bp.get("/communities/<slug>")
@viewer_required
def community(slug: str) -> str:
    """Stock against need levels, a stock chart per good with a need level, sites and open tasks."""
    session = get_session()
    row = _community(slug)
    window, span = _window("30d")
    summary = queries.community_summaries(session, slug)[0]
    goods = places.goods_by_slug(session)
    since = utcnow() - span
    figures = []
    for level in summary.goods:
        good = goods[level.good]
        series = history.stock_history(session, row.id, good.id, since)
        figures.append(
            charts.line_chart(
                series,
                f"{good.name}: stock over the last {window}",
                good.unit,
                step=True,
                reference=level.minimum,
                reference_label="minimum" if level.minimum is not None else "",
            )
        )
    sites = places.community_sites(session, row.id)
    now = utcnow()
    open_tasks = board_read.list_tasks(session, board_read.Filters(community=slug), now)
    return render_template(
        "community.html",
        community=summary,
        sectors=progress.sector_progress(session, community_id=row.id),
        board_tasks=open_tasks[:10],
        figures=figures,
        sites=sites,
        tasks=mapdata.open_tasks(session, slug),
        window=window,
        windows=list(WINDOWS),
    )


@bp.get("/communities/<slug>/sites/<site_slug>")
@viewer_required
def site(slug: str, site_slug: str) -> str:
    """A site's sensors and their telemetry over the last 24 hours or 7 days."""
    session = get_session()
    row = _community(slug)
    found = places.find_site(session, row.id, site_slug) if is_slug(site_slug) else None
    if found is None:
        abort(404, description="no such site")
    window, span = _window("24h")
    series = history.telemetry(session, found.id, utcnow() - span)
    figures = [
        charts.line_chart(points, f"{device} · {metric.replace('_', ' ')}", metric.rsplit("_", 1)[-1])
        for device, metrics in sorted(series.items())
        for metric, points in sorted(metrics.items())
    ]
    devices = places.site_sensors(session, found.id)
    return render_template(
        "site.html",
        community=row,
        site=found,
        devices=devices,
        figures=figures,
        window=window,
        windows=["24h", "7d"],
    )
