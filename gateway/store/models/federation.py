"""Federation tables: the facts this node holds (its own and its peers', replicated) and what it knows of
the other nodes (link state, when each was last heard)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, BigId, utcnow
from gateway.store.models.vocab import HELP_STATES, one_of


class FedFact(Base):
    """One fact, stored once per (origin, seq) wherever it arrives; `sig` is the origin's signature.

    A fact this node writes (origin = this node) starts without a signature and gets one from the federation
    agent, the only process holding the node's key, before it is sent anywhere.
    """

    __tablename__ = "fed_facts"
    __table_args__ = (
        UniqueConstraint("origin", "seq"),
        CheckConstraint("seq >= 1", name="seq"),
        Index(None, "kind", "origin"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    origin: Mapped[str] = mapped_column(String(48))
    seq: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(default=1)
    at: Mapped[datetime]
    body: Mapped[dict[str, Any]]
    sig: Mapped[str | None] = mapped_column(String(120))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    via: Mapped[str | None] = mapped_column(String(48))  # the peer it came from; None for this node's own
    applied_at: Mapped[datetime | None]  # when this node acted on it (a delivery to it booked in its ledger)


class FedNode(Base):
    """Another node as this one sees it: heard directly on a link, or through the beats peers relay."""

    __tablename__ = "fed_nodes"

    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    direct: Mapped[bool] = mapped_column(default=False)  # a link of this node's federation file
    link_up: Mapped[bool] = mapped_column(default=False)  # direct peers: a frame heard recently
    last_heard_at: Mapped[datetime | None]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class FedHelp(Base):
    """A member's offer to help with a neighbour node's repair task, on the helper's own node.

    Its id is the opaque helper ref the `help` fact carries ("<node>/h<id>"): the task's node can answer
    it, and only this node knows who it is. The hours ledger counts the work as `help` with this id.
    """

    __tablename__ = "fed_help"
    __table_args__ = (
        one_of("state", HELP_STATES),
        CheckConstraint("hours > 0", name="hours"),
        Index(None, "task_ref"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_ref: Mapped[str] = mapped_column(String(120))  # "<task node>/<task id>"
    community: Mapped[str] = mapped_column(String(48))  # the task's community: where the hours go
    title: Mapped[str] = mapped_column(String(200))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    hours: Mapped[float]
    skills: Mapped[list[Any]] = mapped_column(default=list)  # the task's skills the member has
    state: Mapped[str] = mapped_column(String(10), default="offered")
    offer_seq: Mapped[int | None] = mapped_column(BigId)  # the seq of this node's `help` fact offering it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
