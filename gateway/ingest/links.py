"""Community bridges' link state, from their notifications: while a link is down its devices are not silent.

A community broker's bridge publishes a retained "1" on its state topic when its link to the regional broker
comes up; the regional broker holds its will, "0", for when the link drops. Behind a dropped link every device
of the community goes quiet at once, and their readings wait in the community broker's queue: judged by the
clock alone, one dead link raised a silence fault and a repair task for every device behind it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.reasons import ProtocolError
from gateway.contract.topics import BRIDGE_DOWN, BRIDGE_UP
from gateway.store.models import BridgeLink, Community

log = logging.getLogger(__name__)


class UnknownCommunity(LookupError):
    """A bridge state for a community the store does not know."""


def parse_link_state(payload: bytes) -> bool:
    """True for "1" (up), False for "0" (down); anything else breaks the contract."""
    value = payload.strip()
    if value not in (BRIDGE_UP, BRIDGE_DOWN):
        raise ProtocolError("value_out_of_range", 'a bridge state is "1" (link up) or "0" (link down)')
    return value == BRIDGE_UP


def record_link_state(session: Session, community: str, up: bool, at: datetime) -> bool:
    """Store the community's link state; True if it changed (a retained replay of the same state is not a
    change, so a gateway reconnecting does not restart anyone's silence clock)."""
    community_id = session.scalar(select(Community.id).where(Community.slug == community))
    if community_id is None:
        raise UnknownCommunity(community)
    state = "up" if up else "down"
    link = session.get(BridgeLink, community_id)
    if link is not None and link.state == state:
        return False
    if link is None:
        session.add(BridgeLink(community_id=community_id, state=state, changed_at=at))
    else:
        link.state, link.changed_at = state, at
    log.warning("bridge link of %s is %s", community, state)
    return True


def link_states(session: Session) -> dict[int, tuple[bool, datetime]]:
    """Every known link: community id -> (up, since when)."""
    rows = session.execute(select(BridgeLink.community_id, BridgeLink.state, BridgeLink.changed_at))
    return {community_id: (state == "up", at) for community_id, state, at in rows}


def silent_since(last_seen: datetime, link: tuple[bool, datetime] | None) -> datetime | None:
    """From when a device's silence counts: None while its community's link is down (it cannot be heard),
    else its last message, or the link's return if that is later (the queue is still being delivered)."""
    if link is None:
        return last_seen
    up, since = link
    if not up:
        return None
    return max(last_seen, since)
