"""Community bridges' links to the regional broker, as their notifications last said."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base
from gateway.store.models.vocab import BRIDGE_LINK_STATES, one_of


class BridgeLink(Base):
    """One row per community that runs its own broker: is its bridge's link up, and since when.

    While it is down the community's devices are not judged silent (the gateway cannot hear them); when it
    comes back their silence is measured from `changed_at`, so the queued readings have time to land.
    """

    __tablename__ = "bridge_links"
    __table_args__ = (one_of("state", BRIDGE_LINK_STATES),)

    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(8))
    changed_at: Mapped[datetime]
