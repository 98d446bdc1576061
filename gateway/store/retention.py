"""Old readings out of the store: a gateway stores every message, so a region's readings grow without end
(the sample region's 329 devices at one message a minute: 14 million rows a month). What later work reads
is recent (fault confirmation, a site's latest values, the charts' windows); the stock ledger, device states
and their history are other tables and are kept.

Each device's newest reading is always kept, so a device that has long been quiet still shows what it last
said. Deletes go in batches, each its own transaction, so the gateway's writer is never held up long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.models import Reading

log = logging.getLogger(__name__)

BATCH = 5_000


def prune_readings(
    sessions: sessionmaker[Session],
    before: datetime,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete readings received before `before` (each device's newest excepted); how many went.

    Finds the last old reading's id once, then walks the ids up to it in order (the primary key's index),
    a batch per transaction, so no batch scans the table for old receipt times."""
    with sessions() as session:
        keep = set(session.scalars(select(func.max(Reading.id)).group_by(Reading.device_id)))
        last = session.scalar(select(func.max(Reading.id)).where(Reading.received_at < before))
    total, after = 0, 0
    while last is not None and after < last:
        with sessions.begin() as session:
            rows = session.execute(
                select(Reading.id, Reading.received_at)
                .where(Reading.id > after, Reading.id <= last)
                .order_by(Reading.id)
                .limit(batch)
            ).all()
            doomed = [rid for rid, at in rows if at < before and rid not in keep]
            if doomed:
                session.execute(delete(Reading).where(Reading.id.in_(doomed)))
        total += len(doomed)
        if progress is not None and doomed:
            progress(total)
        if not rows:
            break
        after = rows[-1][0]
    log.info("pruned %s readings received before %s", total, before.isoformat())
    return total
