"""The store writer: applies batches to the database in a child process of the gateway.

Parsing, validation and the database work run here, MQTT handling in the parent, so the two do not queue for
one interpreter lock: on two cores that is the difference between storing about half and most of what a bare
MQTT client can receive. The parent acknowledges a batch only after this process reports its commit.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.ingest.messages import BatchResult, Ingestor, RawMessage
from gateway.ingest.rules import load_rules
from gateway.store.db import make_engine, make_session_factory

log = logging.getLogger(__name__)
PROBE_EVERY_S = 0.5  # while the database is down: back to storing within about this long of its return
# psycopg's floor (it treats 1 as 2): a probe of a database that drops packets gives up after 2 s, not 130 s.
CONNECT_TIMEOUT_S = 2


class Outage:
    """One stretch of an unavailable database, logged twice: when it starts and, with its length and the
    number of probes, when it ends (a line per retry flooded the log in a long outage)."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.retries = 0

    def began(self, exc: OperationalError) -> None:
        if self.since is not None:
            return
        self.since, self.retries = time.monotonic(), 0
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.warning(
            "database unavailable (%s: %s); probing it every %.1f s, readings wait unacknowledged",
            exc.__class__.__name__,
            reason[0] if reason else "",
            PROBE_EVERY_S,
        )

    def ended(self) -> None:
        if self.since is None:
            return
        log.warning(
            "database back after %.1f s unavailable, %s retries; storing again",
            time.monotonic() - self.since,
            self.retries,
        )
        self.since = None


class StoreWriter:
    """Stores batches with the retry policy: a failed commit is retried with backoff, never half-applied."""

    def __init__(self, database_url: str, rules_file: Path | None = None) -> None:
        self.engine = make_engine(database_url, connect_timeout_s=CONNECT_TIMEOUT_S)
        self.sessions = make_session_factory(self.engine)
        self.ingestor = Ingestor(self.engine, load_rules(rules_file))
        self._dirty = True  # in-memory device health must be (re)loaded from the store
        self.outage = Outage()

    def _refresh_if_dirty(self, session: Session) -> None:
        if self._dirty:
            self.ingestor.refresh(session)
            self._dirty = False

    def store(self, batch: list[RawMessage], should_stop: Callable[[float], bool]) -> BatchResult | None:
        """Commit `batch`; while the database is down, probe it every PROBE_EVERY_S and retry once it
        answers, returning None if `should_stop(wait)` says so (the batch stays unacknowledged)."""
        while True:
            try:
                with self.sessions.begin() as session:
                    self._refresh_if_dirty(session)
                    result = self.ingestor.process(session, batch)
            except OperationalError as exc:
                self._dirty = True
                self.outage.began(exc)
                if not self._await_database(should_stop):
                    return None
                continue
            except DBAPIError:
                self._dirty = True
                return self._one_by_one(batch)
            self.outage.ended()
            return result

    def _await_database(self, should_stop: Callable[[float], bool]) -> bool:
        """Wait until a cheap probe reaches the database; False if told to stop first. A fixed short wait,
        not a growing backoff: a doubling backoff left the gateway idle up to 16 s after a 15 s outage."""
        while True:
            if should_stop(PROBE_EVERY_S):
                return False
            self.outage.retries += 1
            try:
                with self.engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return True
            except OperationalError:
                continue

    def _one_by_one(self, batch: list[RawMessage]) -> BatchResult:
        """Isolate a message the database refuses, dead-letter it, and keep the rest."""
        total = BatchResult()
        for raw in batch:
            try:
                with self.sessions.begin() as session:
                    self._refresh_if_dirty(session)
                    part = self.ingestor.process(session, [raw])
            except SQLAlchemyError as exc:
                self._dirty = True
                log.error("store refused a message on %s: %s", raw.topic, exc.__class__.__name__)
                with self.sessions.begin() as session:
                    kept = self.ingestor.dead_letter(
                        session, raw, "store_rejected", str(getattr(exc, "orig", exc))
                    )
                part = BatchResult()
                if kept:
                    part.dead_letters["store_rejected"] += 1
                else:
                    part.duplicates += 1  # a retained replay of a message already dead-lettered
            total.merge(part)
        return total

    def sweep(self, now: datetime) -> int:
        """Mark silent devices stale; 0 if the database is unavailable (the next sweep catches up)."""
        try:
            with self.sessions.begin() as session:
                self._refresh_if_dirty(session)
                return self.ingestor.health.sweep(session, now)
        except OperationalError as exc:
            self._dirty = True
            log.warning("stale sweep skipped, database unavailable: %s", exc.__class__.__name__)
            return 0

    def close(self) -> None:
        """Save the last-seen times still in memory and release the connections."""
        try:
            with self.sessions.begin() as session:
                self.ingestor.flush_activity(session)
        except OperationalError as exc:
            log.warning("last-seen times not saved, database unavailable: %s", exc.__class__.__name__)
        self.engine.dispose()


class _Requests:
    """The request pipe, read ahead while a batch is retried, so an interrupt is told apart from the next
    batch the gateway already sent (it keeps one batch queued here while this one commits)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.backlog: deque[tuple[Any, ...]] = deque()

    def next(self) -> tuple[Any, ...]:
        return self.backlog.popleft() if self.backlog else self.conn.recv()

    def interrupted(self, wait: float) -> bool:
        """Wait up to `wait` seconds for an ("interrupt",); requests arriving meanwhile are kept in order."""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.conn.poll(remaining):
                return False
            try:
                request = self.conn.recv()
            except EOFError:  # the gateway is gone: stop waiting for the database
                self.backlog.append(("stop",))
                return True
            if request[0] == "interrupt":
                return True
            self.backlog.append(request)


def writer_main(conn: Connection, database_url: str, log_level: str, rules_file: Path | None = None) -> None:
    """Body of the writer process. Requests, answered in order: ("batch", raws) -> ("done", result);
    ("sweep", now) -> ("swept", n); ("stop",) ends it, and so does a closed pipe (the gateway died).
    An ("interrupt",) while a batch waits for an unavailable database answers ("stopped",) for that batch and
    for every batch sent before the interrupt; a late interrupt, after its batches finished, is ignored."""
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    writer = StoreWriter(database_url, rules_file)
    requests = _Requests(conn)
    try:
        while True:
            try:
                request = requests.next()
            except EOFError:
                break
            if request[0] == "batch":
                result = writer.store(request[1], requests.interrupted)
                if result is not None:
                    conn.send(("done", result))
                    continue
                conn.send(("stopped",))
                if _give_up_sent_before_interrupt(requests, conn):
                    break
            elif request[0] == "sweep":
                conn.send(("swept", writer.sweep(request[1])))
            elif request[0] == "stop":
                break
            # a late ("interrupt",) for batches that finished anyway: nothing to do
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        writer.close()


def _give_up_sent_before_interrupt(requests: _Requests, conn: Connection) -> bool:
    """Answer the requests read ahead before the interrupt without doing them; True if one was a stop."""
    stop = False
    while requests.backlog:
        request = requests.backlog.popleft()
        if request[0] == "batch":
            conn.send(("stopped",))
        elif request[0] == "sweep":
            conn.send(("swept", 0))
        elif request[0] == "stop":
            stop = True
    return stop
