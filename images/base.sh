#!/usr/bin/env bash
# Make a Python 3.11 base image from Debian packages, for machines that cannot pull the
# official python:3.11-slim image (air-gapped sites, or a registry mirror of Debian only).
#
#   images/base.sh [IMAGE]        # default IMAGE: saemerge-base:bookworm
#
# Needs root, debootstrap and a running docker engine. Builds a Debian bookworm root file
# system (minbase: the essential packages, python3 with venv, ca-certificates) and imports it
# with `docker import`. Then build on it with
#   images/build.sh --base-image IMAGE
#
# Environment:
#   DEBIAN_MIRROR   the Debian mirror (default http://deb.debian.org/debian)
#   SAEMERGE_BUILDER  docker or podman (default: whichever is found first)
set -euo pipefail

die() { echo "images/base.sh: $1" >&2; exit "${2:-1}"; }

image=${1:-saemerge-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
builder=${SAEMERGE_BUILDER:-}
if [ -z "$builder" ]; then
    for candidate in docker podman; do
        if command -v "$candidate" >/dev/null 2>&1; then builder=$candidate; break; fi
    done
fi
[ -n "$builder" ] || die "no container engine found: install docker or podman" 3
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)" 3
[ "$(id -u)" = 0 ] || die "debootstrap needs root" 3
"$builder" info >/dev/null 2>&1 || die "$builder is installed but its engine is not reachable" 3

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/saemerge-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 5 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap from $mirror failed"; }
rm -f "$rootfs.log"
# Leave out what an image does not need: package lists and caches (the root file system is
# rebuilt from the mirror, never updated in place).
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old
tar --numeric-owner -C "$rootfs" -c . | "$builder" import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$image" >/dev/null
echo "base image $image: $("$builder" run --rm --network host "$image" python3 --version)"
