"""One change notifier per dashboard process: open alert streams wait on it instead of each polling the store.

It counts changes; a stream remembers the count it has read up to and sleeps until the count moves. What
feeds it depends on the dashboard's settings: with a broker, its own subscription to the internal events
(every (re)subscription counts as a change, since events may have been missed meanwhile); without one (as in
the unit tests), one poll of the outbox's newest id for the whole process. The feed runs only while a
stream is open, so a dashboard nobody is watching touches neither the broker nor the store.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

from flask import Flask, Response
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dashboard.web.store import get_store
from gateway.contract.client import connect, make_client
from gateway.contract.events import decode_event
from gateway.contract.reasons import ProtocolError
from gateway.contract.target import MqttTarget
from gateway.contract.topics import INTERNAL_EVENTS, QOS
from gateway.process.settings import Settings
from gateway.store.models import OutboxMessage

log = logging.getLogger(__name__)
EXTENSION = "rhizome_notifier"
_CREATE = threading.Lock()
Feed: TypeAlias = "Callable[[ChangeNotifier, threading.Event], None]"  # counts changes until the event is set


class ChangeNotifier:
    """A change counter that threads wait on; `feed(notifier, stop)` counts changes until `stop` is set."""

    def __init__(self, feed: Feed) -> None:
        self._feed = feed
        self._changed = threading.Condition()
        self._count = 0
        self._listeners = 0
        self._stop_feed: threading.Event | None = None
        self.feeds_started = 0  # how many times a feed was started (once per busy period)

    @property
    def count(self) -> int:
        """Changes seen so far."""
        with self._changed:
            return self._count

    @property
    def listeners(self) -> int:
        """Streams waiting on this notifier now."""
        with self._changed:
            return self._listeners

    def notify(self) -> None:
        """Something may have changed: wake every waiting stream."""
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Sleep until the count differs from `seen` or `timeout` passed; returns the count."""
        with self._changed:
            self._changed.wait_for(lambda: self._count != seen, max(0.0, timeout))
            return self._count

    @contextmanager
    def listening(self) -> Iterator[int]:
        """Keep the feed running while the caller listens; yields the count to read and wait from."""
        with self._changed:
            self._listeners += 1
            if self._stop_feed is None:
                self._stop_feed = threading.Event()
                self.feeds_started += 1
                threading.Thread(
                    target=self._run_feed, args=(self._stop_feed,), name="dashboard-notifier", daemon=True
                ).start()
            seen = self._count
        try:
            yield seen
        finally:
            with self._changed:
                self._listeners -= 1
                if self._listeners == 0 and self._stop_feed is not None:
                    self._stop_feed.set()  # nobody listens: the feed ends; the next stream starts a new one
                    self._stop_feed = None

    def _run_feed(self, stop: threading.Event) -> None:
        try:
            self._feed(self, stop)
        except Exception:  # a broken feed must not pass silently: streams would only end on their timeout
            log.exception("the dashboard's change feed failed; open streams wait for their next reconnect")


def outbox_poll(sessions: sessionmaker[Session], every_s: float) -> Feed:
    """A feed for a dashboard without a broker: the outbox's newest id, read every `every_s` s."""

    def feed(notifier: ChangeNotifier, stop: threading.Event) -> None:
        newest: object = ()  # never an id: the first read counts as a change (rows since the stream read)
        while True:
            try:
                with sessions() as session:
                    now = session.scalar(select(func.max(OutboxMessage.id)))
            except SQLAlchemyError as exc:
                log.warning("alert streams: the outbox could not be read: %s", exc.__class__.__name__)
            else:
                if now != newest:
                    newest = now
                    notifier.notify()
            if stop.wait(every_s):
                return

    return feed


def event_subscription(target: MqttTarget) -> Feed:
    """A feed for a dashboard with a broker: each internal event, and each (re)subscription, is a change."""

    def feed(notifier: ChangeNotifier, stop: threading.Event) -> None:
        client = make_client(target, f"rhizome-dashboard-{secrets.token_hex(4)}")

        def on_connect(c: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
            if reason.is_failure:
                log.error("broker refused the dashboard: %s", reason)
            else:
                c.subscribe(INTERNAL_EVENTS, qos=QOS)

        def on_subscribe(_c: Any, _ud: Any, _mid: int, reasons: Any, _props: Any) -> None:
            if any(r.is_failure for r in reasons):
                log.error("broker refused the dashboard's subscription to %s: %s", INTERNAL_EVENTS, reasons)
            else:
                notifier.notify()  # events sent while it was away are lost: streams read the store again

        def on_message(_c: Any, _ud: Any, message: Any) -> None:
            try:
                decode_event(message.payload)
            except ProtocolError as exc:
                log.warning("internal event dropped: %s", exc)
            else:
                notifier.notify()

        client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
        connect(client, target)
        client.loop_start()  # paho reconnects by itself while the broker is down or restarts
        try:
            stop.wait()
        finally:
            client.disconnect()
            client.loop_stop()

    return feed


KEEPALIVE_S = 15.0  # an event stream says something at least this often (proxies drop silent connections)


def event_stream(app: Flask, new_events: Callable[[], Iterator[str]]) -> Response:
    """A Server-Sent Events response: `new_events()` once when it opens and again each time the notifier
    moves, a keep-alive comment every KEEPALIVE_S, closed after SSE_MAX_S (the browser reconnects)."""
    notifier, max_s = get_notifier(app), float(app.config["SSE_MAX_S"])

    def stream() -> Iterator[str]:
        yield "retry: 1000\n\n"
        deadline = time.monotonic() + max_s
        beat = time.monotonic()
        with notifier.listening() as seen:  # the count before the first read: no change slips between
            yield from new_events()
            while (left := deadline - time.monotonic()) > 0:
                count = notifier.wait(seen, min(left, beat + KEEPALIVE_S - time.monotonic()))
                if count != seen:
                    seen = count
                    yield from new_events()
                if time.monotonic() - beat >= KEEPALIVE_S:
                    beat = time.monotonic()
                    yield ": keep-alive\n\n"

    return Response(
        stream(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def get_notifier(app: Flask) -> ChangeNotifier:
    """The app's notifier, made on first use: fed by the broker in the app's settings, else by the poll."""
    with _CREATE:
        notifier = app.extensions.get(EXTENSION)
        if notifier is None:
            settings: Settings = app.config["RHIZOME_SETTINGS"]
            if settings.mqtt_url:
                feed = event_subscription(settings.mqtt())
            else:
                feed = outbox_poll(get_store(app).sessions, float(app.config["SSE_POLL_S"]))
            notifier = app.extensions[EXTENSION] = ChangeNotifier(feed)
        return notifier
