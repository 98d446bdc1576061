"""Broker accounts: who may connect to the MQTT broker. Only password hashes are kept, never a password."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, utcnow
from gateway.store.models.vocab import BROKER_ACCOUNT_KINDS, one_of

# Each kind of account belongs to exactly what its kind says: a device, a member, or nobody (the gateway).
_OWNER = (
    "(kind = 'device' AND device_id IS NOT NULL AND member_id IS NULL)"
    " OR (kind = 'member' AND member_id IS NOT NULL AND device_id IS NULL)"
    " OR (kind = 'gateway' AND device_id IS NULL AND member_id IS NULL)"
)


class BrokerCredential(Base):
    """One MQTT account; the broker's password and ACL files are generated from these rows.

    `password_hash` is in Mosquitto's own format ($7$ PBKDF2-SHA512), so the files can be rewritten at
    any time without knowing a password. A revoked account keeps its row (for the record) without a hash.
    """

    __tablename__ = "broker_credentials"
    __table_args__ = (
        one_of("kind", BROKER_ACCOUNT_KINDS),
        CheckConstraint(_OWNER, name="owner"),
        CheckConstraint("(revoked_at IS NULL) = (password_hash IS NOT NULL)", name="revoked_has_no_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), unique=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    @property
    def active(self) -> bool:
        """True while the account may connect."""
        return self.password_hash is not None and self.revoked_at is None
