"""Store and forward: a bounded on-disk queue of telemetry and stock messages (SQLite, stdlib).

Every data message goes to the spool first and leaves it only when the broker has acknowledged it, so a
reboot, a crash or a day without a link loses nothing. Rows keep their insertion order (AUTOINCREMENT ids
are never reused), which is the order they are sent in. The spool is bounded: when it is full the oldest
telemetry goes first; stock reports are kept, except one superseded by a newer report of the same device
(levels are absolute, so the newest report carries everything). State messages (birth, will, clean
offline) are never spooled: they describe the current connection and are made afresh on every connect.
Every drop is counted per device in the same file and reported on the next connect (see Forwarder).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)
FORMAT: Final = "rhizome-spool/1"
DEFAULT_MAX_MESSAGES: Final = 50_000  # 34 days at one reading per minute; a few MB on disk
SPOOLED_KINDS: Final = ("telemetry", "stock")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_kind ON messages (kind, id);
CREATE TABLE IF NOT EXISTS drops (
    device TEXT PRIMARY KEY,
    total INTEGER NOT NULL,
    unreported INTEGER NOT NULL,
    first_seq INTEGER,
    last_seq INTEGER
);
"""


@dataclass(frozen=True)
class Row:
    """One queued message."""

    id: int
    device: str
    kind: str
    seq: int
    topic: str
    payload: bytes


@dataclass(frozen=True)
class DropReport:
    """Messages of one device dropped from a full spool since the last report."""

    device: str
    count: int
    first_seq: int
    last_seq: int
    total: int  # every drop of this device since the spool file was created


class Spool:
    """A bounded, ordered, persistent queue of outgoing messages; thread-safe."""

    def __init__(
        self, path: Path | str, *, max_messages: int = DEFAULT_MAX_MESSAGES, durable: bool = True
    ) -> None:
        """Open (or create) the file; `durable` fsyncs every message (a real device), off for simulations."""
        if max_messages < 1:
            raise ValueError(f"spool size must be at least 1, got {max_messages}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self._db.executescript(_SCHEMA)
        found = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if found is None:
            self._db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
        elif found[0] != FORMAT:
            raise ValueError(f"{self.path} is a {found[0]} file, not {FORMAT}")
        self._per_device: Counter[str] = Counter(
            dict(self._db.execute("SELECT device, COUNT(*) FROM messages GROUP BY device").fetchall())
        )
        self._count = sum(self._per_device.values())
        self.in_flight: set[int] = set()  # ids handed to a connection, maintained by the Forwarder
        self.closed = False
        if self._count:
            log.info("spool %s: %s messages from an earlier run to send", self.path, self._count)

    def count(self, device: str | None = None) -> int:
        """Messages waiting (sent or not) that the broker has not acknowledged yet."""
        return self._count if device is None else self._per_device.get(device, 0)

    def put(self, device: str, kind: str, seq: int, topic: str, payload: bytes) -> int | None:
        """Append a message; when full, drop the oldest telemetry first. The new id, or None if dropped."""
        if kind not in SPOOLED_KINDS:
            raise ValueError(f"only {SPOOLED_KINDS} messages are spooled, not {kind!r}")
        with self._lock:
            self._db.execute("BEGIN")
            try:
                while self._count >= self.max_messages:
                    victim = self._victim(kind, device)
                    if victim is None:  # nothing older to give up: the new telemetry is the oldest there is
                        self._record_drop(device, seq)
                        return None
                    self._drop(*victim)
                cursor = self._db.execute(
                    "INSERT INTO messages (device, kind, seq, topic, payload) VALUES (?, ?, ?, ?, ?)",
                    (device, kind, seq, topic, payload),
                )
            finally:
                self._db.execute("COMMIT")
            self._count += 1
            self._per_device[device] += 1
            return cursor.lastrowid

    def after(self, cursor: int, limit: int) -> list[Row]:
        """Up to `limit` messages with an id above `cursor`, oldest first."""
        with self._lock:
            if self.closed:
                return []  # a forwarder's last drain racing the stop: nothing more goes out
            rows = self._db.execute(
                "SELECT id, device, kind, seq, topic, payload FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, limit),
            ).fetchall()
        return [Row(i, d, k, s, t, bytes(p)) for i, d, k, s, t, p in rows]

    def count_after(self, cursor: int) -> int:
        """How many messages have an id above `cursor` (what a stalled forwarder still has to send)."""
        with self._lock:
            if self.closed:
                return 0
            found = self._db.execute("SELECT COUNT(*) FROM messages WHERE id > ?", (cursor,)).fetchone()
            return int(found[0])

    def ack(self, acked: Collection[tuple[int, str]]) -> None:
        """Forget acknowledged messages, given as (id, device) pairs."""
        with self._lock:
            if not acked or self.closed:
                return  # closed: the acknowledged messages are sent again next run (QoS 1: at least once)
            self._db.execute("BEGIN")
            deleted = 0
            for row_id, device in acked:
                self.in_flight.discard(row_id)
                if self._db.execute("DELETE FROM messages WHERE id = ?", (row_id,)).rowcount:
                    deleted += 1
                    self._uncount(device)
            self._db.execute("COMMIT")
            self._count -= deleted

    def take_reports(self, devices: Collection[str] | None = None) -> list[DropReport]:
        """Unreported drops (of `devices`, or all), marking them reported."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device, unreported, first_seq, last_seq, total FROM drops WHERE unreported > 0"
            ).fetchall()
            reports = [DropReport(*row) for row in rows if devices is None or row[0] in devices]
            self._db.executemany(
                "UPDATE drops SET unreported = 0 WHERE device = ?", [(r.device,) for r in reports]
            )
        return reports

    def dropped(self, device: str) -> int:
        """Every message of `device` this spool ever dropped."""
        with self._lock:
            row = self._db.execute("SELECT total FROM drops WHERE device = ?", (device,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the file (the queued messages stay for the next run)."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._db.close()

    def _victim(self, kind: str, device: str) -> tuple[int, str, int] | None:
        """The message to give up for a new one: oldest telemetry, else a superseded stock report."""
        limit = len(self.in_flight) + 1  # messages already handed to paho are going out anyway
        rows = self._db.execute(
            "SELECT id, device, seq FROM messages WHERE kind = 'telemetry' ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        victim = next((row for row in rows if row[0] not in self.in_flight), None)
        if victim is not None or kind == "telemetry":
            return victim
        rows = self._db.execute(
            "SELECT id, device, seq FROM messages AS m WHERE kind = 'stock' AND (device = ? OR EXISTS "
            "(SELECT 1 FROM messages AS n WHERE n.kind = 'stock' AND n.device = m.device AND n.id > m.id)) "
            "ORDER BY id LIMIT ?",
            (device, limit),
        ).fetchall()
        victim = next((row for row in rows if row[0] not in self.in_flight), None)
        if victim is None:
            log.error("spool %s is full of the latest stock of %s devices", self.path, len(self._per_device))
            oldest = "SELECT id, device, seq FROM messages ORDER BY id LIMIT ?"
            rows = self._db.execute(oldest, (limit,)).fetchall()
            victim = next((row for row in rows if row[0] not in self.in_flight), None)
        return victim

    def _drop(self, row_id: int, device: str, seq: int) -> None:
        self._db.execute("DELETE FROM messages WHERE id = ?", (row_id,))
        self._count -= 1
        self._uncount(device)
        self._record_drop(device, seq)

    def _uncount(self, device: str) -> None:
        left = self._per_device[device] - 1
        if left > 0:
            self._per_device[device] = left
        else:
            del self._per_device[device]

    def _record_drop(self, device: str, seq: int) -> None:
        self._db.execute(
            "INSERT INTO drops (device, total, unreported, first_seq, last_seq) VALUES (?, 1, 1, ?, ?) "
            "ON CONFLICT (device) DO UPDATE SET total = total + 1, unreported = unreported + 1, "
            "first_seq = CASE WHEN unreported = 0 THEN excluded.first_seq "
            "ELSE MIN(first_seq, excluded.first_seq) END, "
            "last_seq = CASE WHEN unreported = 0 THEN excluded.last_seq "
            "ELSE MAX(last_seq, excluded.last_seq) END",
            (device, seq, seq),
        )
