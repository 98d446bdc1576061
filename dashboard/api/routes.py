"""The JSON API (/api/...): what the map shows, as data for other tools and later views."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from sqlalchemy.orm import Session

from dashboard.api import exports, openapi
from dashboard.read import mapdata, progress, queries
from dashboard.read.links import SHOWN_STATES
from dashboard.read.queries import CommunitySummary, DeviceRow, GoodLevel
from dashboard.web.auth import current_account
from dashboard.web.store import get_session
from gateway.contract.topics import is_slug
from gateway.store.models import Community, Good
from gateway.store.models.vocab import DEVICE_KINDS

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def _readers_only() -> None:
    """The API shows what the map shows: public when the map is, otherwise for signed-in accounts."""
    if not current_app.config["PUBLIC_MAP"] and current_account() is None:
        abort(401, description="sign in first: this dashboard's map and API are not public")


DEFAULT_LIMIT, MAX_LIMIT = 1000, 10000  # pages keep a 50k-device region's answers bounded
PAGING = ("limit", "offset")


@bp.get("/health")
def health() -> Response:
    """Liveness plus a cheap read of the store (a 503 comes from the error handler if it is down)."""
    return jsonify(status="ok", counts=queries.counts(get_session()))


@bp.get("/communities")
def communities() -> Response:
    """Every community with its worst shortage."""
    _params(())
    summaries = queries.community_summaries(get_session())
    return jsonify(communities=[_community(c) for c in summaries], count=len(summaries))


@bp.get("/communities/<slug>")
def community(slug: str) -> Response:
    """One community: its stock per good against its need levels, and its devices with their state."""
    _params(())
    session = get_session()
    found = queries.community_summaries(session, slug) if is_slug(slug) else []
    if not found:
        abort(404, description=f"no community with slug {_shown(slug)}")
    devices = queries.device_rows(session, community=slug)
    detail = {"goods": [_good(g) for g in found[0].goods], "devices": [_device(d) for d in devices]}
    return jsonify(_community(found[0]) | detail)


@bp.get("/stock")
def stock() -> Response:
    """Stock rows per site and good; filter with ?community=<slug>&good=<slug>, page with limit/offset."""
    params = _params(("community", "good", *PAGING))
    session = get_session()
    community_slug = _known(session, params, "community", Community)
    good_slug = _known(session, params, "good", Good)
    limit, offset = _paging(params)
    rows = queries.stock_rows(session, community_slug, good_slug, limit, offset)
    items = [
        {
            "community": r.community,
            "site": r.site,
            "good": r.good,
            "quantity": r.quantity,
            "unit": r.unit,
            "updated_at": _iso(r.updated_at),
        }
        for r in rows
    ]
    return jsonify(stock=items, count=len(items), limit=limit, offset=offset)


@bp.get("/devices")
def devices() -> Response:
    """Devices with site, community and state; filter by community, kind or state, page with limit/offset."""
    params = _params(("community", "kind", "state", *PAGING))
    session = get_session()
    community_slug = _known(session, params, "community", Community)
    kind = _choice(params, "kind", DEVICE_KINDS)
    state = _choice(params, "state", SHOWN_STATES)
    limit, offset = _paging(params)
    rows = queries.device_rows(session, community_slug, kind, state, limit, offset)
    items = [_device(d) | {"community": d.community} for d in rows]
    return jsonify(devices=items, count=len(items), limit=limit, offset=offset)


@bp.get("/openapi.json")
def openapi_description() -> Response:
    """The OpenAPI 3.1 description of this API."""
    _params(())
    return jsonify(openapi.document())


@bp.get("/sites/<id:site_id>")
def site(site_id: int) -> Response:
    """One site with its sensors and their state (what a site's popup on the map shows)."""
    _params(())
    found = mapdata.site_detail(get_session(), site_id)
    if found is None:
        abort(404, description=f"no site with id {site_id}")
    return jsonify(
        id=site_id,
        slug=found.slug,
        name=found.name,
        kind=found.kind,
        lat=found.lat,
        lon=found.lon,
        community=found.community,
        community_name=found.community_name,
        community_url=url_for("places.community", slug=found.community),
        devices=[_device(d) for d in found.devices],
    )


@bp.get("/shortages")
def shortages() -> Response:
    """Goods below a community's minimum, essential first."""
    _params(())
    items = [exports.shortage_record(s) for s in progress.shortages(get_session())]
    return jsonify(shortages=items, count=len(items))


@bp.get("/shortages.csv")
def shortages_csv() -> Response:
    """The shortages as a CSV download, UTF-8 with a byte-order mark so spreadsheet programs read names
    like Añasco right (?bom=0 leaves it out, for tools that do not want one)."""
    params = _params(("bom",))
    bom = _choice(params, "bom", ("0", "1")) != "0"
    body = ("\ufeff" if bom else "") + exports.shortages_csv(progress.shortages(get_session()))
    return Response(
        body.encode("utf-8"),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="rhizome-shortages.csv"'},
    )


@bp.get("/shortages.geojson")
def shortages_geojson() -> Response:
    """The shortages as GeoJSON points (a map layer)."""
    _params(())
    response = jsonify(exports.shortages_geojson(progress.shortages(get_session())))
    response.mimetype = "application/geo+json"
    response.headers["Content-Disposition"] = 'attachment; filename="rhizome-shortages.geojson"'
    return response


@bp.get("/sectors")
def sectors() -> Response:
    """Collective progress per sector this month (never per person)."""
    _params(())
    items = [
        {
            "sector": p.sector,
            "goals": p.goals,
            "met": p.met,
            "percent": p.percent,
            "deliveries": p.deliveries,
            "text": p.sentence,
        }
        for p in progress.sector_progress(get_session())
    ]
    return jsonify(sectors=items)


@bp.get("/tasks")
def tasks() -> Response:
    """Open repair tasks, most urgent first."""
    params = _params(("community",))
    session = get_session()
    community_slug = _known(session, params, "community", Community)
    items = [
        {
            "id": t.id,
            "title": t.title,
            "status": t.status,
            "urgency": t.urgency,
            "site": t.site,
            "community": t.community,
            "lat": t.lat,
            "lon": t.lon,
            "assigned": t.assigned,
            "created_at": _iso(t.created_at),
        }
        for t in mapdata.open_tasks(session, community_slug)
    ]
    return jsonify(tasks=items, count=len(items))


@bp.get("/flows.geojson")
def flows_geojson() -> Response:
    """Planned and moving deliveries as GeoJSON lines, one per (from site, to site), heaviest first."""
    _params(())
    flows = sorted(mapdata.flows(get_session()), key=lambda f: -f.weight_kg)
    features = [
        {
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": [[f.from_lon, f.from_lat], [f.to_lon, f.to_lat]],
            },
            "properties": {
                "from": f.from_name,
                "to": f.to_name,
                "weight_kg": f.weight_kg,
                "goods": [
                    {"name": g.name, "quantity": g.quantity, "unit": g.unit, "status": g.status}
                    for g in f.goods
                ],
            },
        }
        for f in flows
    ]
    response = jsonify(type="FeatureCollection", features=features)
    response.mimetype = "application/geo+json"
    return response


def _community(c: CommunitySummary) -> dict[str, Any]:
    worst = c.worst
    return {
        "id": c.id,
        "slug": c.slug,
        "name": c.name,
        "lat": c.lat,
        "lon": c.lon,
        "population": c.population,
        "level": c.level,
        "worst_shortage": _good(worst) if worst else None,
    }


def _good(g: GoodLevel) -> dict[str, Any]:
    return {
        "good": g.good,
        "name": g.name,
        "unit": g.unit,
        "essential": g.essential,
        "quantity": g.quantity,
        "minimum": g.minimum,
        "target": g.target,
        "level": g.level,
    }


def _device(d: DeviceRow) -> dict[str, Any]:
    return {
        "slug": d.slug,
        "kind": d.kind,
        "site": d.site,
        "state": d.state,
        "last_seen_at": _iso(d.last_seen_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _shown(value: str) -> str:
    """User input quoted and cut short for an error message."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _params(allowed: Collection[str]) -> dict[str, str]:
    """The query parameters, each at most once; an unknown one is a 400 (a typo must not widen a query)."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        abort(400, description=f"unknown query parameter {_shown(unknown[0])}; allowed: {known}")
    values = {}
    for key in request.args:
        given = request.args.getlist(key)
        if len(given) != 1:
            abort(400, description=f"query parameter {key!r} given {len(given)} times")
        values[key] = given[0]
    return values


def _known(
    session: Session, params: Mapping[str, str], name: str, model: type[Community] | type[Good]
) -> str | None:
    """A slug filter: malformed is a 400, well-formed but absent from the store is a 404."""
    value = params.get(name)
    if value is None:
        return None
    if not is_slug(value):
        abort(400, description=f"{name} must be a slug (lowercase, digits, dashes), got {_shown(value)}")
    if not queries.exists(session, model, value):
        abort(404, description=f"no {name} with slug {_shown(value)}")
    return value


def _choice(params: Mapping[str, str], name: str, choices: Collection[str]) -> str | None:
    value = params.get(name)
    if value is not None and value not in choices:
        abort(400, description=f"{name} must be one of {', '.join(choices)}, got {_shown(value)}")
    return value


def _paging(params: Mapping[str, str]) -> tuple[int, int]:
    limit = _integer(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return limit, _integer(params, "offset", 0, 0, 10**9)


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        abort(400, description=f"{name} must be an integer from {low} to {high}, got {_shown(raw)}")
    return int(raw)
