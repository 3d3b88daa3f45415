#!/usr/bin/env bash
# Build both images on a machine that cannot pull the official Python base image or reach the
# PyTorch CPU index (CI here, an air-gapped site), or reuse them: a rebuild of unchanged code
# takes every layer from the build cache.
#
#   images/build-here.sh [build.sh arguments...]
#
# Inputs, each made once and reused:
#   base image  SAEMERGE_BASE_IMAGE (default saemerge-base:bookworm), made by images/base.sh
#               from Debian packages when the engine does not have it;
#   wheelhouse  .whl/ holding the pinned torch wheel, from `pip download` (pip's find-links
#               or index; on this machine the CPU wheel), for the cpu image;
#   CA bundle   the system bundle (/etc/ssl/certs/ca-certificates.crt) where there is one.
# The images these builds replace (untagged now) are removed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "images/build-here.sh: $1" >&2; exit "${2:-1}"; }
if ! { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
    die "no container engine reachable (images/engine.sh start)" 3
fi

base=${SAEMERGE_BASE_IMAGE:-saemerge-base:bookworm}
if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "making the base image $base from Debian packages ..."
    "$root/images/base.sh" "$base"
fi

wheelhouse="$root/.whl"
torch_version=$(sed -n 's/^torch==//p' "$root/images/constraints.txt")
if ! compgen -G "$wheelhouse/torch-${torch_version}[-+]*.whl" >/dev/null; then
    python=python3
    [ ! -x "$root/.venv/bin/python" ] || python="$root/.venv/bin/python"
    "$python" -m pip download --quiet --no-deps --only-binary :all: -d "$wheelhouse" "torch==$torch_version" \
        || die "pip download torch==$torch_version failed: no wheel for the wheelhouse $wheelhouse" 3
fi

ca_args=()
[ ! -f /etc/ssl/certs/ca-certificates.crt ] || ca_args=(--ca-bundle /etc/ssl/certs/ca-certificates.crt)
# The two builds side by side: the gpu image's is mostly downloading (CUDA wheels), the cpu
# image's mostly copying; each one's output is prefixed with its flavour.
pids=()
for flavour in cpu gpu; do
    "$root/images/build.sh" "$flavour" --base-image "$base" --cpu-wheelhouse "$wheelhouse" "${ca_args[@]}" "$@" 2>&1 \
        | sed -u "s/^/[$flavour] /" &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || die "an image build failed (its output above)"
for title in saemerge-cpu saemerge-gpu; do
    docker image prune --force --filter "label=org.opencontainers.image.title=$title" >/dev/null
done
