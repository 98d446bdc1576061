"""Batch writes for the hot path: many telemetry readings in one INSERT, device bookkeeping in one UPDATE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, Text, bindparam, case, func, insert, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.store.models import Device, DeviceStateChange, Reading

# The typed views of the tables (ORM `__table__` is typed as a generic FromClause).
READINGS_TABLE: Table = Reading.__table__  # type: ignore[assignment]
DEVICES_TABLE: Table = Device.__table__  # type: ignore[assignment]
STATE_CHANGES_TABLE: Table = DeviceStateChange.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class PendingReading:
    """A validated reading waiting for the batch insert."""

    device_id: int
    seq: int
    kind: str
    device_ts: datetime
    received_at: datetime
    payload: str  # the validated message as received, JSON text: stored without re-encoding


def insert_readings(session: Session, rows: Sequence[PendingReading]) -> set[tuple[int, int]]:
    """Insert readings idempotently; return the (device_id, seq) pairs that were new."""
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        return _copy_readings(session, rows)
    table = READINGS_TABLE
    # An executemany with RETURNING: SQLAlchemy packs it into multi-row INSERTs ("insertmanyvalues") from a
    # cached compilation, and RETURNING says which rows were new (rowcount is unreliable with ON CONFLICT).
    stmt = (
        sqlite_insert(table)
        .values({c: bindparam(c) for c in _COLUMNS} | {"payload": bindparam("payload", type_=Text())})
        .on_conflict_do_nothing()
        .returning(table.c.device_id, table.c.seq)
    )
    result = session.connection().execute(stmt, [row.__dict__ for row in rows])
    return {(device_id, seq) for device_id, seq in result}


_COLUMNS = ("device_id", "seq", "kind", "device_ts", "received_at")
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS readings_in (
    device_id bigint, seq bigint, kind text, device_ts timestamptz, received_at timestamptz, payload jsonb
) ON COMMIT DELETE ROWS
"""
_MERGE = """
INSERT INTO readings (device_id, seq, kind, device_ts, received_at, payload)
SELECT device_id, seq, kind, device_ts, received_at, payload FROM readings_in
ON CONFLICT (device_id, seq) DO NOTHING
RETURNING device_id, seq
"""


def _copy_readings(session: Session, rows: Sequence[PendingReading]) -> set[tuple[int, int]]:
    """PostgreSQL: COPY into a per-connection staging table, then one INSERT ... ON CONFLICT DO NOTHING.

    COPY skips building and parsing a statement with thousands of parameters, the slow part of a
    multi-row INSERT from Python.
    """
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a live pool connection always has its driver connection
    with raw.cursor() as cursor:
        cursor.execute(_STAGING)
        columns = "device_id, seq, kind, device_ts, received_at, payload"
        with cursor.copy(f"COPY readings_in ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    (row.device_id, row.seq, row.kind, row.device_ts, row.received_at, row.payload)
                )
        cursor.execute(_MERGE)
        new = {(device_id, seq) for device_id, seq in cursor.fetchall()}
        cursor.execute("DELETE FROM readings_in")  # the transaction goes on; keep the next batch clean
    return new


def record_activity(session: Session, seen: dict[int, tuple[int, datetime]]) -> None:
    """Store last seen time and highest seq per device (one executemany for the whole set)."""
    if not seen:
        return
    devices = DEVICES_TABLE.c
    session.connection().execute(
        update(DEVICES_TABLE)
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
    devices = DEVICES_TABLE.c
    conn = session.connection()
    revived = (
        conn.execute(
            update(DEVICES_TABLE)
            .where(devices.id.in_(list(seen)), devices.state.in_(("unknown", "offline", "stale")))
            .values(state="online", state_changed_at=max(at for _, at in seen.values()))
            .returning(devices.id)
        )
        .scalars()
        .all()
    )
    if revived:
        conn.execute(
            insert(STATE_CHANGES_TABLE),
            [
                {"device_id": d, "state": "online", "at": seen[d][1], "reason": "data received"}
                for d in revived
            ],
        )
    return len(revived)
