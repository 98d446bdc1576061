#!/bin/sh
# Test scaffolding for machines without Docker Hub: builds local stand-ins, from Debian packages, for the
# three official images docs/deploy/docker-compose.yml uses, under the SAME names (python:3.11-slim,
# eclipse-mosquitto:2.0, postgres:16; PostgreSQL 15 stands in for 16). Needs root (debootstrap), a Docker
# daemon and deb.debian.org. Never run this where the official images can be pulled: it would shadow them.
#   sudo tests/compose/build-standins.sh        # then RHIZOME_TEST_COMPOSE=1 pytest tests/test_compose.py
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if ! docker image inspect local/debian:bookworm >/dev/null 2>&1; then
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
    rm -f "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | docker import - local/debian:bookworm
    rm -rf "$rootfs"
fi
# pip in the python stand-in must reach PyPI: a host behind a TLS-intercepting proxy trusts it through the CAs
# in /usr/local/share/ca-certificates (public certificates, no keys), so the image gets the same ones.
ctx=$(mktemp -d)
cp -r "$here/standins/python/." "$ctx/"
mkdir -p "$ctx/extra-ca"
for ca in "${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"/*.crt; do
    if [ -f "$ca" ]; then cp "$ca" "$ctx/extra-ca/"; fi
done
docker build -t python:3.11-slim "$ctx"
rm -rf "$ctx"
docker build -t eclipse-mosquitto:2.0 "$here/standins/mosquitto"
docker build -t postgres:16 "$here/standins/postgres"
