"""Time series for charts: a community's stock of a good (from the ledger) and a site's telemetry."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import Device, Reading, Site, StockLedgerEntry

Series = list[tuple[datetime, float]]


def stock_history(session: Session, community_id: int, good_id: int, since: datetime) -> Series:
    """Total stock of a good over the community's sites after each ledger entry since `since`.

    Starts with the total held at `since` (each site's last entry before it), so the line begins at the
    window's left edge instead of at zero.
    """
    sites = select(Site.id).where(Site.community_id == community_id)
    rows = session.execute(
        select(StockLedgerEntry.site_id, StockLedgerEntry.quantity_after, StockLedgerEntry.created_at)
        .where(StockLedgerEntry.good_id == good_id, StockLedgerEntry.site_id.in_(sites))
        .order_by(StockLedgerEntry.created_at, StockLedgerEntry.id)
    )
    held: dict[int, float] = {}
    series: Series = []
    for site_id, quantity, at in rows:
        if at >= since and not series and held:
            series.append((since, sum(held.values())))  # what the sites held when the window opened
        held[site_id] = float(quantity)
        if at >= since:
            series.append((at, sum(held.values())))
    if not series and held:
        series.append((since, sum(held.values())))  # nothing changed in the window: a flat line
    return series


def telemetry(session: Session, site_id: int, since: datetime) -> dict[str, dict[str, Series]]:
    """Device slug -> metric -> (time, value) for the site's telemetry since `since` (booleans as 0/1)."""
    rows = session.execute(
        select(Device.slug, Reading.device_ts, Reading.payload)
        .join(Device, Reading.device_id == Device.id)
        .where(Device.site_id == site_id, Reading.kind == "telemetry", Reading.device_ts >= since)
        .order_by(Device.slug, Reading.device_ts, Reading.seq)
    )
    series: dict[str, dict[str, Series]] = defaultdict(lambda: defaultdict(list))
    for slug, at, payload in rows:
        metrics = payload.get("metrics") if isinstance(payload, dict) else None
        if not isinstance(metrics, dict):
            continue
        for name, value in metrics.items():
            if isinstance(value, bool | int | float):
                series[slug][name].append((at, float(value)))
    return {slug: dict(metrics) for slug, metrics in series.items()}
