"""A route as the driver meets it: one visit per place, not one card per shipment.

The router orders stops per shipment, so picking up rice and beans at the same hub is two stops at the same
point: two cards and two markers on top of each other. Consecutive stops at one site become one visit that
lists its pickups and drop-offs; a site the route comes back to later keeps its visits apart (the order is
the plan's) but gets one marker on the map, labelled with each visit's number. Each visit has a `geo:` link,
which phone navigation apps (OsmAnd, Organic Maps, Google Maps on Android) open at the place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from dashboard.read.routes import RouteView, StopView
from gateway.store.models.vocab import StopAction, StopStatus


@dataclass(frozen=True)
class Visit:
    """Consecutive stops of a route at one site."""

    n: int  # 1-based, in route order
    site_id: int
    site_name: str
    community_name: str
    lat: float
    lon: float
    stops: tuple[StopView, ...]

    @property
    def eta(self) -> datetime | None:
        return next((s.eta for s in self.stops if s.eta is not None), None)

    @property
    def status(self) -> str:
        """pending while any stop is; failed if any failed; else done."""
        statuses = {s.status for s in self.stops}
        if StopStatus.PENDING in statuses:
            return StopStatus.PENDING.value
        return (StopStatus.FAILED if StopStatus.FAILED in statuses else StopStatus.DONE).value

    @property
    def pickups(self) -> tuple[StopView, ...]:
        return tuple(s for s in self.stops if s.action == StopAction.PICKUP)

    @property
    def dropoffs(self) -> tuple[StopView, ...]:
        return tuple(s for s in self.stops if s.action == StopAction.DELIVERY)

    @property
    def geo(self) -> str:
        """A geo: URI (RFC 5870) with the site's name as the label navigation apps show."""
        point = f"{self.lat:.6f},{self.lon:.6f}"
        return f"geo:{point}?q={point}({quote(self.site_name, safe='')})"


def visits(route: RouteView) -> list[Visit]:
    """The route's stops grouped into visits: a new visit whenever the site changes."""
    found: list[Visit] = []
    for stop in route.stops:
        last = found[-1] if found else None
        if last is not None and last.site_id == stop.site_id:
            found[-1] = Visit(
                last.n,
                last.site_id,
                last.site_name,
                last.community_name,
                last.lat,
                last.lon,
                (*last.stops, stop),
            )
        else:
            found.append(
                Visit(
                    len(found) + 1,
                    stop.site_id,
                    stop.site_name,
                    stop.community_name,
                    stop.lat,
                    stop.lon,
                    (stop,),
                )
            )
    return found


def map_data(found: list[Visit]) -> dict[str, Any]:
    """What route.js draws: the path through the visits in order, and one marker per site."""
    markers: dict[int, dict[str, Any]] = {}
    for visit in found:
        marker = markers.setdefault(
            visit.site_id,
            {"lat": visit.lat, "lon": visit.lon, "site": visit.site_name, "visits": [], "status": "done"},
        )
        marker["visits"].append(visit.n)
        if visit.status == StopStatus.PENDING or marker["status"] == StopStatus.PENDING:
            marker["status"] = StopStatus.PENDING.value
        elif visit.status == StopStatus.FAILED:
            marker["status"] = StopStatus.FAILED.value
    return {
        "path": [[v.lat, v.lon] for v in found],
        "markers": list(markers.values()),
    }
