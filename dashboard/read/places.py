"""What a community's page and a site's page name: the place itself, its sites, its sensors, the goods.

Read-only: functions taking a session and returning plain frozen values (the pages' charts read
dashboard.read.history, their stock levels dashboard.read.queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.read.links import shown_state
from gateway.store.models import Community, Device, Good, Site


@dataclass(frozen=True)
class Place:
    """A community by id, slug and name."""

    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class SiteRow:
    """A site of a community."""

    id: int
    slug: str
    name: str
    kind: str


@dataclass(frozen=True)
class GoodRow:
    """A good of the catalogue, as a chart titles it."""

    id: int
    slug: str
    name: str
    unit: str


@dataclass(frozen=True)
class SensorRow:
    """A device of a site and what it last said."""

    slug: str
    kind: str
    state: str
    last_seen_at: datetime | None


def find_community(session: Session, slug: str) -> Place | None:
    """The community with `slug`, or None."""
    found = session.execute(
        select(Community.id, Community.slug, Community.name).where(Community.slug == slug)
    ).first()
    return Place(*found) if found else None


def goods_by_slug(session: Session) -> dict[str, GoodRow]:
    """Every good of the catalogue by slug."""
    query = select(Good.id, Good.slug, Good.name, Good.unit)
    return {row.slug: GoodRow(*row) for row in session.execute(query)}


def community_sites(session: Session, community_id: int) -> list[SiteRow]:
    """The community's sites by slug."""
    query = (
        select(Site.id, Site.slug, Site.name, Site.kind)
        .where(Site.community_id == community_id)
        .order_by(Site.slug)
    )
    return [SiteRow(*row) for row in session.execute(query)]


def find_site(session: Session, community_id: int, slug: str) -> SiteRow | None:
    """The community's site with `slug`, or None."""
    found = session.execute(
        select(Site.id, Site.slug, Site.name, Site.kind).where(
            Site.community_id == community_id, Site.slug == slug
        )
    ).first()
    return SiteRow(*found) if found else None


def site_sensors(session: Session, site_id: int) -> list[SensorRow]:
    """The site's devices by slug."""
    query = (
        select(Device.slug, Device.kind, shown_state(), Device.last_seen_at)
        .where(Device.site_id == site_id)
        .order_by(Device.slug)
    )
    return [SensorRow(*row) for row in session.execute(query)]
