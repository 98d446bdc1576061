"""A community's page (stock against needs, stock charts, sites) and a site's telemetry charts."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, render_template, request
from sqlalchemy import select

from dashboard.read import history, mapdata, queries
from dashboard.views import charts
from dashboard.web.auth import viewer_required
from dashboard.web.store import get_session
from gateway.contract.protocol import is_slug
from gateway.store.models import Community, Device, Good, Site, utcnow

bp = Blueprint("places", __name__)
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def _window(default: str) -> tuple[str, timedelta]:
    name = request.args.get("window", default)
    if name not in WINDOWS:
        abort(400, description=f"window must be one of {', '.join(WINDOWS)}")
    return name, WINDOWS[name]


def _community(slug: str) -> Community:
    found = get_session().scalar(select(Community).where(Community.slug == slug)) if is_slug(slug) else None
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
    goods = {g.slug: g for g in session.scalars(select(Good))}
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
    sites = session.execute(
        select(Site.slug, Site.name, Site.kind).where(Site.community_id == row.id).order_by(Site.slug)
    ).all()
    return render_template(
        "community.html",
        community=summary,
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
    found = (
        session.scalar(select(Site).where(Site.community_id == row.id, Site.slug == site_slug))
        if is_slug(site_slug)
        else None
    )
    if found is None:
        abort(404, description="no such site")
    window, span = _window("24h")
    series = history.telemetry(session, found.id, utcnow() - span)
    figures = [
        charts.line_chart(points, f"{device} · {metric.replace('_', ' ')}", metric.rsplit("_", 1)[-1])
        for device, metrics in sorted(series.items())
        for metric, points in sorted(metrics.items())
    ]
    devices = session.execute(
        select(Device.slug, Device.kind, Device.state, Device.last_seen_at)
        .where(Device.site_id == found.id)
        .order_by(Device.slug)
    ).all()
    return render_template(
        "site.html",
        community=row,
        site=found,
        devices=devices,
        figures=figures,
        window=window,
        windows=["24h", "7d"],
    )
