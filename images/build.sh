#!/usr/bin/env bash
# Build the saemerge container images with docker, podman or buildah (whichever is found first).
#
#   images/build.sh [cpu|gpu|all] [--push] [--dry-run]
#                   [--cpu-build-arg KEY=VALUE]... [--gpu-build-arg KEY=VALUE]...
#
# Image names come from SAEMERGE_CPU_IMAGE / SAEMERGE_GPU_IMAGE; their defaults are the
# pipeline's compile defaults (CompileOptions in pipeline/common.py), so a default build
# and a default `saemerge compile` agree. Give the same names to
# `saemerge compile|submit --cpu-image ... --gpu-image ...` when you push elsewhere.
#
# The build context is a staging copy holding only pyproject.toml, README.md, src/,
# components/, pipeline/ and images/: never .venv, .git or .saemerge (local S3 credentials).
#
# Environment:
#   SAEMERGE_CPU_IMAGE, SAEMERGE_GPU_IMAGE   image names (with tag)
#   SAEMERGE_BUILDER                         force one of docker, podman, buildah
#   SAEMERGE_PLATFORM                        target platform (default linux/amd64: the pins are for x86_64)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "images/build.sh: $1" >&2; exit "${2:-1}"; }

# The pipeline's default image names, read from the source so there is one place to change them
# (their tag is the package version, written once in src/saemerge/__init__.py).
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/src/saemerge/__init__.py")
compile_default() {
    sed -n "s/^ *$1: str = f\\{0,1\\}\"\\(.*\\)\"$/\\1/p" "$root/pipeline/common.py" | head -n 1 \
        | sed "s/{__version__}/$version/"
}

cpu_image=${SAEMERGE_CPU_IMAGE:-$(compile_default cpu_image)}
gpu_image=${SAEMERGE_GPU_IMAGE:-$(compile_default gpu_image)}
platform=${SAEMERGE_PLATFORM:-linux/amd64}
[ -n "$cpu_image" ] && [ -n "$gpu_image" ] || die "no image names: set SAEMERGE_CPU_IMAGE and SAEMERGE_GPU_IMAGE" 2

which_images=all push=0 dry_run=0
cpu_args=() gpu_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        cpu|gpu|all) which_images=$1 ;;
        --push) push=1 ;;
        --dry-run) dry_run=1 ;;
        --cpu-build-arg) [ $# -ge 2 ] || die "--cpu-build-arg needs KEY=VALUE" 2; cpu_args+=(--build-arg "$2"); shift ;;
        --gpu-build-arg) [ $# -ge 2 ] || die "--gpu-build-arg needs KEY=VALUE" 2; gpu_args+=(--build-arg "$2"); shift ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" 2 ;;
    esac
    shift
done

# Pick the builder.
builder=${SAEMERGE_BUILDER:-}
if [ -z "$builder" ]; then
    for candidate in docker podman buildah; do
        if command -v "$candidate" >/dev/null 2>&1; then builder=$candidate; break; fi
    done
fi
if [ -z "$builder" ]; then
    if [ "$dry_run" = 1 ]; then
        builder=docker
    else
        die "no container builder found: install docker, podman or buildah (or set SAEMERGE_BUILDER)" 3
    fi
elif [ "$dry_run" = 0 ]; then
    command -v "$builder" >/dev/null 2>&1 || die "SAEMERGE_BUILDER=$builder is not on PATH" 3
fi
case "$builder" in
    docker|podman) build=("$builder" build) push_cmd=("$builder" push) ;;
    buildah) build=(buildah build) push_cmd=(buildah push) ;;
    *) die "unsupported builder '$builder' (docker, podman or buildah)" 2 ;;
esac
if [ "$builder" = docker ] && [ "$dry_run" = 0 ] && ! docker info >/dev/null 2>&1; then
    die "docker is installed but its daemon is not reachable (start it, or use podman/buildah via SAEMERGE_BUILDER)" 3
fi

run() {
    printf '+'; printf ' %q' "$@"; printf '\n'
    [ "$dry_run" = 1 ] || "$@"
}

# Staging context: exactly what the Dockerfiles COPY, plus the Dockerfiles themselves.
ctx=$(mktemp -d "${TMPDIR:-/tmp}/saemerge-build.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
for path in pyproject.toml README.md src components pipeline images; do
    [ -e "$root/$path" ] || die "missing $root/$path" 2
    cp -R "$root/$path" "$ctx/"
done
find "$ctx" \( -name __pycache__ -o -name '*.egg-info' -o -name '*.pyc' \) -prune -exec rm -rf {} +

build_one() {  # flavour image extra-args...
    local flavour=$1 image=$2; shift 2
    run "${build[@]}" --platform "$platform" -f "$ctx/images/$flavour.Dockerfile" -t "$image" "$@" "$ctx"
    [ "$push" = 0 ] || run "${push_cmd[@]}" "$image"
}

echo "builder: $builder; cpu image: $cpu_image; gpu image: $gpu_image"
case "$which_images" in
    cpu) build_one cpu "$cpu_image" "${cpu_args[@]}" ;;
    gpu) build_one gpu "$gpu_image" "${gpu_args[@]}" ;;
    all) build_one cpu "$cpu_image" "${cpu_args[@]}"; build_one gpu "$gpu_image" "${gpu_args[@]}" ;;
esac
if [ "$dry_run" = 0 ]; then
    echo "built. Compile the pipeline for these images with:"
    echo "  saemerge compile --cpu-image $cpu_image --gpu-image $gpu_image"
fi
