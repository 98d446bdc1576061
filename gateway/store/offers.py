"""What a person offers: the baseline every member starts from, and the sector a piece of work counts in.

The baseline is the network's default, which each member may change on their page: about 150 hours a year,
20 in each of five essential sectors and 50 of other work. The weekly pledge (`hours_per_week`) is the hard
limit in any one week; the year's hours by sector bound what the planners may ask over the year.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from gateway.contract.errors import InvalidInput
from gateway.store.models.vocab import WORK_SECTORS

ESSENTIAL_SECTORS: Final = ("food", "education", "health", "maintenance", "governance")
OFFER_SECTORS: Final = (*ESSENTIAL_SECTORS, "other")
BASELINE_SECTOR_HOURS: Final[Mapping[str, float]] = MappingProxyType(
    {**dict.fromkeys(ESSENTIAL_SECTORS, 20.0), "other": 50.0}
)
BASELINE_YEAR_HOURS: Final = sum(BASELINE_SECTOR_HOURS.values())  # 150
REPAIR_SECTOR: Final = "maintenance"
# A delivery counts in the sector of the goods it carries when that is a sector people offer hours to.
DELIVERY_SECTORS: Final[Mapping[str, str]] = MappingProxyType({"food": "food", "health": "health"})


def offer_sector(sector: str) -> str:
    """The offer's bucket for a work sector: one of OFFER_SECTORS (water, energy and the rest: other)."""
    return sector if sector in OFFER_SECTORS else "other"


def delivery_sector(good_sector: str) -> str:
    """The work sector a delivery of goods of `good_sector` counts in."""
    return DELIVERY_SECTORS.get(good_sector, "other")


def sector_hours(stored: Mapping[str, Any] | None, year_hours: float | None = None) -> dict[str, float]:
    """A member's yearly hours by sector: the stored split, or the baseline scaled to their year's hours."""
    if stored:
        split: dict[str, float] = {}
        for sector, hours in stored.items():  # water and energy both count as "other"
            split[offer_sector(sector)] = split.get(offer_sector(sector), 0.0) + float(hours)
        return split
    scale = 1.0 if year_hours is None else year_hours / BASELINE_YEAR_HOURS
    return {k: v * scale for k, v in BASELINE_SECTOR_HOURS.items()}


def validate_sector_hours(value: Any, year_hours: float) -> dict[str, float]:
    """A sector split a person typed or a region file gave, checked: known sectors, hours >= 0, and no more
    in all than the year's hours. InvalidInput names what is wrong."""
    if not isinstance(value, Mapping):
        raise InvalidInput("sector hours must map sectors to hours")
    checked: dict[str, float] = {}
    for sector, hours in value.items():
        if sector not in WORK_SECTORS:
            raise InvalidInput(f"unknown sector {str(sector)[:40]!r}; use one of {', '.join(WORK_SECTORS)}")
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 <= hours <= 8760:
            raise InvalidInput(f"hours for {sector} must be a number from 0 to 8760")
        checked[sector] = float(hours)
    if sum(checked.values()) > year_hours + 1e-9:
        raise InvalidInput(
            f"the sectors add up to {sum(checked.values()):g} h, more than {year_hours:g} h offered a year"
        )
    return checked
