"""The devices of a region file (`rhizome-region/1` JSON), read with the stdlib (no gateway store code)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from gateway.contract.payloads import DEVICE_KINDS
from gateway.contract.topics import Topic, is_slug

FORMAT: Final = "rhizome-region/1"
SAMPLE: Final = "puerto_rico.json"


@dataclass(frozen=True)
class DeviceSpec:
    """One device to simulate, with what its model needs to know about its site."""

    community: str
    site: str
    slug: str
    kind: str
    interval_s: float
    site_kind: str = "storage"
    lon: float | None = None
    stock: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Topic(self.community, self.site, self.slug, "state")  # raises on a bad slug
        if self.kind not in DEVICE_KINDS:
            raise ValueError(f"device {self.slug}: kind {self.kind!r} not one of {DEVICE_KINDS}")
        if not self.interval_s > 0:
            raise ValueError(f"device {self.slug}: interval_s must be positive, got {self.interval_s!r}")
        bad = [good for good, qty in self.stock.items() if not is_slug(good) or not qty >= 0]
        if bad:
            raise ValueError(f"site {self.community}/{self.site}: bad stock entries {bad}")


def sample_region_path() -> Path:
    """The bundled sample region (a data file of the gateway package, not a code import)."""
    return Path(str(resources.files("gateway.contract") / "regions" / SAMPLE))


def read_devices(path: Path | str) -> list[DeviceSpec]:
    """Every device of a region file, in file order; ValueError names the first malformed entry."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read region file {path}: {exc}") from exc
    return devices_of(data)


def devices_of(data: Any) -> list[DeviceSpec]:
    """Every device of a parsed region document, in document order."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    specs = []
    try:
        for community in data["communities"]:
            for site in community.get("sites", []):
                for device in site.get("devices", []):
                    specs.append(
                        DeviceSpec(
                            community=community["slug"],
                            site=site["slug"],
                            slug=device["slug"],
                            kind=device["kind"],
                            interval_s=float(device["interval_s"]),
                            site_kind=site.get("kind", "storage"),
                            lon=float(site["lon"]) if site.get("lon") is not None else None,
                            stock={good: float(qty) for good, qty in (site.get("stock") or {}).items()},
                        )
                    )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"region document malformed near device {len(specs) + 1}: {exc!r}") from exc
    return specs


def select(
    specs: Sequence[DeviceSpec], *, community: str | None = None, limit: int | None = None
) -> list[DeviceSpec]:
    """Filter by community slug, then keep the first `limit` devices."""
    chosen = [s for s in specs if community is None or s.community == community]
    return chosen[:limit] if limit is not None else chosen
