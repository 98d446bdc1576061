"""Vendor the map's JS/CSS and geography from pinned npm tarballs: no CDN, ever.

`python -m dashboard.map.vendor` downloads each tarball, checks it against the pinned npm integrity (sha512),
extracts only the files the page needs (plus the licence) into dashboard/static/vendor/<name>/, derives the
sample region's shapes and basemap from the atlas it ships (vendor/geo/: GeoJSON areas, a PMTiles basemap;
see geography.py and basemap.py) and writes MANIFEST.json, sources and licences included.
`python -m dashboard.map.vendor --check` verifies the committed files against it, offline.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import io
import json
import logging
import shutil
import sys
import tarfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboard.map.geography import AreaSource, area_features, feature_collection, inner_borders

log = logging.getLogger(__name__)
REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = Path(__file__).resolve().parents[1] / "static" / "vendor"
MANIFEST = "MANIFEST.json"


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm release and the files of it that the page uses."""

    name: str
    version: str
    integrity: str  # npm's `dist.integrity` (SRI sha512) of the tarball, pinned here
    files: tuple[str, ...]  # paths or globs inside the tarball's package/ folder
    strip: str = ""  # leading folder dropped from each path (keeps CSS-relative url()s working)

    @property
    def folder(self) -> str:
        """Folder under static/vendor/: the name without its npm scope."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def tarball_url(self) -> str:
        """The registry's conventional tarball address."""
        return f"{REGISTRY}/{self.name}/-/{self.folder}-{self.version}.tgz"

    def destination(self, path: str) -> str:
        """Where a package file lands, relative to this package's folder."""
        return path[len(self.strip) :] if self.strip and path.startswith(self.strip) else path


# What map.js draws with (a page links each file from static/vendor/ by its path), and the atlas it draws.
PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage(
        "leaflet",
        "1.9.3",
        "sha512-iB2cR9vAkDOu5l3HAay2obcUHZ7xwUBBjph8+PGtmW/2lYhbLizWtG7nTeYht36WfOslixQF9D/uSIzhZgGMfQ==",
        ("dist/leaflet.js", "dist/leaflet.css", "dist/images/*.png", "LICENSE"),
        strip="dist/",
    ),
    # Clusters the site layer so 50,000 markers draw in seconds. map.js draws its own cluster icons, so the
    # plugin's MarkerCluster.Default.css (the default icons) is not needed.
    NpmPackage(
        "leaflet.markercluster",
        "1.1.0",
        "sha512-eI+XkCiLiHwCC3uZ4/n4+Vq3rXcqEHN2lhHRVG1WVziy/3Q0TTipWkzEa1zO0dKZI2AnI5ppFDWrOjnQ7MJLKQ==",
        ("dist/leaflet.markercluster.js", "dist/MarkerCluster.css", "MIT-LICENCE.txt"),
        strip="dist/",
    ),
    # Draws the PMTiles basemap (an OSM extract, or the generated sample) as Leaflet canvas tiles; its
    # bundle carries the pmtiles reader and the Protomaps styles (no fonts or sprites fetched).
    NpmPackage(
        "protomaps-leaflet",
        "5.1.0",
        "sha512-N0YY1Gbw5nZ9n8VUOvwHKm/w3zhTTuaZEeMZl8doHemeM4ujGPp2otI6t4Sgqrz8iM4svx2rpG1Q17rHkOWSaA==",
        ("dist/protomaps-leaflet.js", "LICENSE"),
        strip="dist/",
    ),
    # U.S. Census Bureau shapes as TopoJSON: only the licence is kept, the region's areas are derived below.
    NpmPackage(
        "us-atlas",
        "3.0.1",
        "sha512-wEIZCq0ImPvGblTd8gZMqNNCPkQshugMUG/8nkSWXb02+XqNFREg9atHOKP9w6prLZTpqcLhSvdBW81MkV3/0Q==",
        ("LICENSE", "README.md"),
    ),
)
GEO_FOLDER = "geo"
# The sample region's municipios (FIPS 72xxx); another region adds its atlas here (world-atlas for countries).
AREA_SOURCES: tuple[AreaSource, ...] = (
    AreaSource(
        "puerto_rico",
        "us-atlas",
        "counties-10m.json",
        "counties",
        "72",
        "U.S. Census Bureau cartographic boundary shapes (public domain), as packaged by us-atlas (ISC)",
    ),
)


def fetch(url: str, timeout: float = 60.0) -> bytes:
    """Download `url` (the npm registry only)."""
    if not url.startswith(REGISTRY + "/"):
        raise ValueError(f"refusing to download from outside the npm registry: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def check_integrity(data: bytes, integrity: str) -> None:
    """Raise ValueError unless `data` matches the SRI string (sha512-<base64>)."""
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise ValueError(f"integrity mismatch: expected {integrity}, got {algorithm}-{actual}")


def extract(package: NpmPackage, tarball: bytes, target: Path) -> list[dict[str, Any]]:
    """Write the selected files of `tarball` under `target`; returns their manifest entries."""
    entries: list[dict[str, Any]] = []
    matched: set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if not member.isfile() or not member.name.startswith("package/"):
                continue
            inner = member.name.removeprefix("package/")
            pattern = next((p for p in package.files if fnmatch.fnmatchcase(inner, p)), None)
            if pattern is None:
                continue
            matched.add(pattern)
            relative = package.destination(inner)
            if relative.startswith("/") or ".." in Path(relative).parts:
                raise ValueError(f"{package.name}: unsafe path {inner!r}")
            handle = archive.extractfile(member)
            assert handle is not None  # a regular file always has content
            data = handle.read()
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            entries.append(file_entry(relative, data))
    missing = set(package.files) - matched
    if missing:
        raise ValueError(f"{package.name}@{package.version}: no file matches {sorted(missing)}")
    return entries


def read_member(tarball: bytes, inner: str) -> bytes:
    """One file of a package tarball (`inner` is relative to its package/ folder)."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        handle = archive.extractfile(f"package/{inner}")
        if handle is None:
            raise ValueError(f"{inner} is not a file")
        return handle.read()


def file_entry(relative: str, data: bytes) -> dict[str, Any]:
    """A manifest line: path, size, sha256."""
    return {"path": relative, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def derive_region(source: AreaSource, tarball: bytes, version: str, target: Path) -> list[dict[str, Any]]:
    """The region's areas (GeoJSON) and its basemap (PMTiles) from the atlas in `tarball`, under `target`."""
    from dashboard.map.basemap import build_pmtiles, tile_count  # build-time only: shapely and friends

    topology = json.loads(read_member(tarball, source.atlas))
    origin = f"{source.package}@{version}/{source.atlas}"
    features = area_features(topology, source.layer, source.id_prefix)
    if not features:
        raise ValueError(f"{origin}: no area in {source.layer!r} has an id starting {source.id_prefix!r}")
    shapes = json.dumps(feature_collection(features, origin), separators=(",", ":"), ensure_ascii=False)
    archive = build_pmtiles(features, inner_borders(topology, source.layer, source.id_prefix), source.licence)
    log.info("%s: %s areas, basemap of %s tiles", source.region, len(features), tile_count(archive))
    target.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, data in ((f"{source.region}.geojson", shapes.encode()), (f"{source.region}.pmtiles", archive)):
        (target / name).write_bytes(data)
        entries.append(file_entry(name, data))
    return entries


def vendor(
    packages: Sequence[NpmPackage] = PACKAGES,
    vendor_dir: Path = VENDOR_DIR,
    areas: Sequence[AreaSource] = AREA_SOURCES,
) -> dict[str, Any]:
    """Download, verify and extract every package, derive the regions' geography, replacing what was there;
    returns the manifest."""
    records = []
    tarballs: dict[str, tuple[str, bytes]] = {}
    for package in packages:
        log.info("fetching %s@%s", package.name, package.version)
        tarball = fetch(package.tarball_url)
        check_integrity(tarball, package.integrity)
        tarballs[package.name] = (package.version, tarball)
        target = vendor_dir / package.folder
        if target.exists():
            shutil.rmtree(target)  # no stale files from an older version
        files = extract(package, tarball, target)
        records.append(
            {
                "package": package.name,
                "version": package.version,
                "folder": package.folder,
                "tarball": package.tarball_url,
                "integrity": package.integrity,
                "files": files,
            }
        )
    derived = []
    geo = vendor_dir / GEO_FOLDER
    if geo.exists():
        shutil.rmtree(geo)
    for source in areas:
        version, tarball = tarballs[source.package]
        derived.append(
            {
                "region": source.region,
                "folder": GEO_FOLDER,
                "source": f"{source.package}@{version}/{source.atlas}",
                "selection": f"{source.layer} with id starting {source.id_prefix}",
                "licence": source.licence,
                "files": derive_region(source, tarball, version, geo),
            }
        )
    manifest = {"generated_by": "python -m dashboard.map.vendor", "packages": records, "derived": derived}
    (vendor_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def verify(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """Problems found comparing the vendored files with MANIFEST.json (empty when all is well)."""
    try:
        manifest = json.loads((vendor_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [f"cannot read {MANIFEST}: {exc}"]
    problems = []
    listed = {MANIFEST}
    for record in [*manifest["packages"], *manifest.get("derived", [])]:
        for entry in record["files"]:
            relative = f"{record['folder']}/{entry['path']}"
            listed.add(relative)
            path = vendor_dir / relative
            if not path.is_file():
                problems.append(f"missing {relative}")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                problems.append(f"changed {relative}")
    for path in sorted(p for p in vendor_dir.rglob("*") if p.is_file()):
        if path.relative_to(vendor_dir).as_posix() not in listed:
            problems.append(f"not in manifest: {path.relative_to(vendor_dir).as_posix()}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: vendor (default) or --check."""
    parser = argparse.ArgumentParser(
        prog="python -m dashboard.map.vendor", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="verify the vendored files offline")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(levelname)s %(message)s")
    if args.check:
        problems = verify()
        for problem in problems:
            log.error("%s", problem)
        log.info("%s", "vendored files match the manifest" if not problems else "vendored files differ")
        return 1 if problems else 0
    manifest = vendor()
    total = sum(int(f["bytes"]) for r in manifest["packages"] for f in r["files"])
    log.info("vendored %s packages, %s bytes, into %s", len(manifest["packages"]), total, VENDOR_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
