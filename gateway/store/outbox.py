"""The transactional outbox: the one place that adds messages to publish (the gateway's relay drains them).

A message is written in the transaction that decided it, so it is published if and only if the change
commits. Bodies are compact JSON; NaN is refused because no consumer could parse it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from gateway.contract.events import InternalEvent, encode_event
from gateway.contract.topics import INTERNAL_EVENTS, QOS
from gateway.store.models import OutboxMessage


def compact_json(body: Mapping[str, Any]) -> bytes:
    """The body as compact JSON bytes (no spaces; NaN raises ValueError)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def enqueue(session: Session, topic: str, body: Mapping[str, Any] | bytes, qos: int = QOS) -> OutboxMessage:
    """Queue `body` (a JSON object, or payload bytes already encoded) for `topic` in the caller's
    transaction; returns the row (its id is set at flush)."""
    payload = body if isinstance(body, bytes) else compact_json(body)
    row = OutboxMessage(topic=topic, payload=payload, qos=qos)
    session.add(row)
    return row


def enqueue_event(session: Session, event: InternalEvent) -> OutboxMessage:
    """Queue an internal event (gateway.contract.events) on the internal events topic."""
    return enqueue(session, INTERNAL_EVENTS, encode_event(event))
