"""Broker accounts: who may connect to the MQTT broker. Only password hashes are kept, never a password."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, utcnow
from gateway.store.models.vocab import BROKER_ACCOUNT_KINDS, one_of

# What each kind of account is bound to; every other owner column must be NULL for it.
_BOUND = {
    "device": ("device_id",),
    "member": ("member_id",),
    "gateway": (),
    "bridge": ("community_id",),  # the community whose broker bridges to this one
    "service": ("name", "reads", "writes"),  # a named process and the topic patterns it was given
    "node": ("name", "local_node"),  # the peer node's name and this node's name
}
# None is SQL NULL here (not JSON 'null'), so the owner CHECK can tell a service's lists from no lists.
_PATTERNS = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_OWNER_COLUMNS = ("device_id", "member_id", "community_id", "name", "local_node", "reads", "writes")


def owner_check(bound: dict[str, tuple[str, ...]] = _BOUND) -> str:
    """The owner CHECK: each kind of account belongs to exactly what its kind says, and nothing else."""
    clauses = []
    for kind, columns in bound.items():
        terms = [f"kind = '{kind}'"]
        terms += [f"{c} IS {'NOT NULL' if c in columns else 'NULL'}" for c in _OWNER_COLUMNS]
        clauses.append(f"({' AND '.join(terms)})")
    return " OR ".join(clauses)


class BrokerCredential(Base):
    """One MQTT account; the broker's password and ACL files are generated from these rows.

    `password_hash` is in Mosquitto's own format ($7$ PBKDF2-SHA512), so the files can be rewritten at
    any time without knowing a password. A revoked account keeps its row (for the record) without a hash.
    """

    __tablename__ = "broker_credentials"
    __table_args__ = (
        one_of("kind", BROKER_ACCOUNT_KINDS),
        CheckConstraint(owner_check(), name="owner"),
        CheckConstraint("(revoked_at IS NULL) = (password_hash IS NOT NULL)", name="revoked_has_no_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), unique=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), unique=True)
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), unique=True
    )
    name: Mapped[str | None] = mapped_column(String(48))  # a service's or a peer node's name (a slug)
    local_node: Mapped[str | None] = mapped_column(String(48))  # a node account: this node's name
    reads: Mapped[list[Any] | None] = mapped_column(_PATTERNS)  # a service's topic patterns, validated
    writes: Mapped[list[Any] | None] = mapped_column(_PATTERNS)  # by gateway.broker.accounts
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    @property
    def active(self) -> bool:
        """True while the account may connect."""
        return self.password_hash is not None and self.revoked_at is None
