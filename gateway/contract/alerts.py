"""Where a member alert points (docs/mqtt.md#member-alerts): the site's name and coordinates and a path
on the dashboard, added to every alert about a place so a crew phone shows more than a site number.

The link is a path, not an address: the gateway does not know under which host the dashboard is served;
an app joins it to the dashboard's base URL."""

from __future__ import annotations

from typing import Any


def crew_task_link(task_id: int) -> str:
    """The repair task's card on the crew page."""
    return f"/crew#task-{task_id}"


def board_task_link(task_id: int) -> str:
    """The board task's page."""
    return f"/board/{task_id}"


def place_fields(site_name: str, lat: float, lon: float, link: str) -> dict[str, Any]:
    """The additive fields: `site_name`, `lat`, `lon` (WGS 84 degrees, 6 decimals) and `link`."""
    return {"site_name": site_name, "lat": round(lat, 6), "lon": round(lon, 6), "link": link}
