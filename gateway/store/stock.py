"""Stock levels and their ledger: the only writer of stock_ledger rows, so no level changes without a why.

Three callers change stock: ingest (a device's stock report sets a level), the region loader (a level from
the file, only where the store has none) and deliveries (a pickup takes goods out, a drop-off or a failed
delivery puts them back). Each change sets the Stock row and appends one ledger row in the same flush.
Ingest applies stock reports one by one (the readings themselves go in bulk, gateway.ingest.bulk), with
the batch's Stock rows already in the session, so `session.get` here does not query.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gateway.contract.errors import Conflict
from gateway.store.models import Stock, StockLedgerEntry, utcnow
from gateway.store.models.vocab import LedgerSource

MAX_LEDGER_REASON = 200  # the column's width
INITIAL_REASON = "initial level from region file"
REPORT_REASON = "stock report"


def record(
    session: Session,
    row: Stock | None,
    site_id: int,
    good_id: int,
    quantity: float,
    delta: float,
    *,
    source: LedgerSource,
    reason: str,
    at: datetime,
    device_id: int | None = None,
    seq: int | None = None,
    shipment_id: int | None = None,
) -> Stock:
    """Set the level of a good at a site to `quantity` and append the ledger row saying why.

    `row` is the current Stock row (None when the site never held the good); `delta` is the change as the
    caller knows it (kept exact in the ledger, not recomputed from floats). Returns the row.
    """
    if row is None:
        row = Stock(site_id=site_id, good_id=good_id, quantity=0.0)
        session.add(row)
    row.quantity, row.updated_at = quantity, at
    session.add(
        StockLedgerEntry(
            site_id=site_id,
            good_id=good_id,
            delta=delta,
            quantity_after=quantity,
            reason=reason[:MAX_LEDGER_REASON],
            source=source.value,
            device_id=device_id,
            seq=seq,
            shipment_id=shipment_id,
            created_at=at,
        )
    )
    return row


def report_level(
    session: Session, site_id: int, good_id: int, quantity: float, device_id: int, seq: int, at: datetime
) -> bool:
    """A device reported `quantity` on hand: record it unless the level is already that. True if recorded."""
    row = session.get(Stock, (site_id, good_id))
    before = row.quantity if row is not None else 0.0
    if row is not None and before == quantity:
        return False
    record(
        session,
        row,
        site_id,
        good_id,
        quantity,
        quantity - before,
        source=LedgerSource.SENSOR,
        reason=REPORT_REASON,
        at=at,
        device_id=device_id,
        seq=seq,
    )
    return True


def initial_level(session: Session, site_id: int, good_id: int, quantity: float) -> Stock:
    """A level from the region file for a site and good the store holds no stock row for."""
    return record(
        session,
        None,
        site_id,
        good_id,
        float(quantity),
        float(quantity),
        source=LedgerSource.INITIAL,
        reason=INITIAL_REASON,
        at=utcnow(),
    )


def move(session: Session, site_id: int, good_id: int, delta: float, reason: str, shipment_id: int) -> float:
    """Goods of a shipment leave (`delta` < 0) or reach (> 0) a site; returns the new level.

    Raises Conflict when the site holds less than is taken out.
    """
    row = session.get(Stock, (site_id, good_id))
    before = row.quantity if row is not None else 0.0
    after = before + delta
    if after < 0:
        raise Conflict(f"the site holds only {before:g} of this good, not {-delta:g}")
    record(
        session,
        row,
        site_id,
        good_id,
        after,
        delta,
        source=LedgerSource.DELIVERY,
        reason=reason,
        at=utcnow(),
        shipment_id=shipment_id,
    )
    return after


def held(session: Session, site_id: int, good_id: int) -> float:
    """How much of a good a site holds now (0 when it never held any)."""
    row = session.get(Stock, (site_id, good_id))
    return row.quantity if row is not None else 0.0
