"""The state a device is shown in: behind a community bridge whose link is down, "link down".

The gateway judges no silence behind a down link (gateway.ingest.links), so such a device keeps the state it
had; the map and the API say what is known instead: the region cannot hear it. A device with an open fault
stays "fault": that much is known.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, literal, select

from gateway.store.models import BridgeLink, Device, Site
from gateway.store.models.vocab import DEVICE_STATES

LINK_DOWN = "link down"
SHOWN_STATES = (*DEVICE_STATES, LINK_DOWN)  # what the API may answer and filter by


def shown_state() -> ColumnElement[str]:
    """Device.state, or "link down" for a device (not in fault) whose community's bridge link is down."""
    down = (
        select(Site.id)
        .join(BridgeLink, BridgeLink.community_id == Site.community_id)
        .where(BridgeLink.state == "down")
    )
    behind_down_link = and_(Device.state != "fault", Device.site_id.in_(down))
    return case((behind_down_link, literal(LINK_DOWN)), else_=Device.state)
