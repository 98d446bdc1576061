"""Batch writes for the hot path: many telemetry readings in one INSERT, device bookkeeping in one UPDATE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.models import Device, DeviceStateChange, Reading


@dataclass(frozen=True)
class PendingReading:
    """A validated reading waiting for the batch insert."""

    device_id: int
    seq: int
    kind: str
    device_ts: datetime
    received_at: datetime
    payload: dict[str, Any]


def insert_readings(session: Session, rows: Sequence[PendingReading]) -> set[tuple[int, int]]:
    """Insert readings idempotently in one statement; return the (device_id, seq) pairs that were new."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    table = Reading.__table__
    if dialect == "postgresql":
        stmt: Any = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        stmt = insert(table)
    # An executemany with RETURNING: SQLAlchemy packs it into multi-row INSERTs ("insertmanyvalues") from a
    # cached compilation, and RETURNING says which rows were new (rowcount is unreliable with ON CONFLICT).
    stmt = stmt.returning(table.c.device_id, table.c.seq)
    result = session.connection().execute(stmt, [row.__dict__ for row in rows])
    return {(device_id, seq) for device_id, seq in result}


def record_activity(session: Session, seen: dict[int, tuple[int, datetime]]) -> None:
    """Store last seen time and highest seq per device (one executemany for the whole set)."""
    if not seen:
        return
    devices = Device.__table__.c
    session.connection().execute(
        update(Device.__table__)
        .where(devices.id == bindparam("b_id"))
        .values(
            last_seen_at=bindparam("b_at"),
            last_seq=case(
                (func.coalesce(devices.last_seq, -1) < bindparam("b_seq"), bindparam("b_seq")),
                else_=devices.last_seq,
            ),
        ),
        [{"b_id": d, "b_seq": seq, "b_at": at} for d, (seq, at) in seen.items()],
    )


def revive_devices(session: Session, seen: dict[int, tuple[int, datetime]]) -> int:
    """Bring unknown, offline or stale devices that sent data back online; return how many changed.

    One UPDATE ... RETURNING for the whole batch; each change is also written to device_state_changes.
    """
    if not seen:
        return 0
    devices = Device.__table__.c
    conn = session.connection()
    revived = (
        conn.execute(
            update(Device.__table__)
            .where(devices.id.in_(list(seen)), devices.state.in_(("unknown", "offline", "stale")))
            .values(state="online", state_changed_at=max(at for _, at in seen.values()))
            .returning(devices.id)
        )
        .scalars()
        .all()
    )
    if revived:
        conn.execute(
            insert(DeviceStateChange.__table__),
            [
                {"device_id": d, "state": "online", "at": seen[d][1], "reason": "data received"}
                for d in revived
            ],
        )
    return len(revived)
