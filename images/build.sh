#!/usr/bin/env bash
# Build the saemerge container images with docker, podman or buildah (whichever is found first).
#
#   images/build.sh [cpu|gpu|all] [--push] [--dry-run] [--base-image IMAGE]
#                   [--ca-bundle FILE] [--cpu-wheelhouse DIR] [--gpu-wheelhouse DIR]
#                   [--cpu-build-arg KEY=VALUE]... [--gpu-build-arg KEY=VALUE]...
#
#   --base-image IMAGE   build FROM this image (default: the official python:3.11 slim image;
#                        images/base.sh makes one from Debian packages where that cannot be pulled)
#   --ca-bundle FILE     a CA bundle pip trusts while installing the dependencies
#   --cpu-wheelhouse DIR, --gpu-wheelhouse DIR
#                        wheels pip looks at first; must hold the pinned torch release
#                        (e.g. `pip download torch==VERSION --no-deps -d DIR`)
#   --push               push, then print the images' digest references to compile with
#
# The CA bundle and the wheelhouse are used by the Dockerfiles' first stage only: no layer of
# an image holds them. Each image carries the saemerge version and the git commit as OCI labels.
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
base_image="" ca_bundle="" cpu_wheelhouse="" gpu_wheelhouse=""
while [ $# -gt 0 ]; do
    case "$1" in
        cpu|gpu|all) which_images=$1 ;;
        --push) push=1 ;;
        --dry-run) dry_run=1 ;;
        --cpu-build-arg) [ $# -ge 2 ] || die "--cpu-build-arg needs KEY=VALUE" 2; cpu_args+=(--build-arg "$2"); shift ;;
        --gpu-build-arg) [ $# -ge 2 ] || die "--gpu-build-arg needs KEY=VALUE" 2; gpu_args+=(--build-arg "$2"); shift ;;
        --base-image) [ $# -ge 2 ] || die "--base-image needs IMAGE" 2; base_image=$2; shift ;;
        --ca-bundle) [ $# -ge 2 ] || die "--ca-bundle needs FILE" 2; ca_bundle=$2; shift ;;
        --cpu-wheelhouse) [ $# -ge 2 ] || die "--cpu-wheelhouse needs DIR" 2; cpu_wheelhouse=$2; shift ;;
        --gpu-wheelhouse) [ $# -ge 2 ] || die "--gpu-wheelhouse needs DIR" 2; gpu_wheelhouse=$2; shift ;;
        -h|--help) sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" 2 ;;
    esac
    shift
done

# The inputs, checked before anything is built.
torch_version=$(sed -n 's/^torch==//p' "$root/images/constraints.txt")
if [ -n "$ca_bundle" ] && [ ! -f "$ca_bundle" ]; then
    die "--ca-bundle $ca_bundle: no such file" 2
fi
check_wheelhouse() {  # flag dir
    [ -z "$2" ] && return 0
    [ -d "$2" ] || die "$1 $2: no such directory" 2
    compgen -G "$2/torch-${torch_version}[-+]*.whl" >/dev/null \
        || die "$1 $2: holds no torch $torch_version wheel (pip download torch==$torch_version --no-deps -d $2)" 2
}
check_wheelhouse --cpu-wheelhouse "$cpu_wheelhouse"
check_wheelhouse --gpu-wheelhouse "$gpu_wheelhouse"

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
if [ "$builder" = docker ] && [ -z "${DOCKER_BUILDKIT:-}" ] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0  # no buildx plugin: the classic builder (both build these Dockerfiles)
fi

# The base image: here, or pulled now (a name that is neither fails before any build).
if [ -n "$base_image" ] && [ "$dry_run" = 0 ] && ! "$builder" image inspect "$base_image" >/dev/null 2>&1; then
    "$builder" pull "$base_image" >/dev/null 2>&1 \
        || die "--base-image $base_image: not on this machine and cannot be pulled (images/base.sh makes one)" 2
fi
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git -C "$root" status --porcelain -- pyproject.toml src components pipeline images 2>/dev/null)" ]; then
    commit="$commit-dirty"
fi
identity=(--build-arg "SAEMERGE_VERSION=$version" --build-arg "SAEMERGE_COMMIT=$commit")
[ -z "$base_image" ] || identity+=(--build-arg "BASE_IMAGE=$base_image")

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

# images/build-inputs/ of the context: this flavour's inputs only (the Dockerfiles' deps stage COPYs it).
stage_inputs() {  # wheelhouse
    local inputs="$ctx/images/build-inputs"
    rm -rf "$inputs" && mkdir -p "$inputs"
    cp "$root/images/build-inputs/README.md" "$inputs/"
    [ -z "$ca_bundle" ] || cp "$ca_bundle" "$inputs/ca.crt"
    [ -z "$1" ] || { mkdir "$inputs/wheelhouse" && cp "$1"/*.whl "$inputs/wheelhouse/"; }
}

digest_ref() {  # image -> repo@sha256:... after a push
    local repo=${1%:*}
    "$builder" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$1" | grep -m 1 "^$repo@"
}

declare -A digests=()
build_one() {  # flavour image wheelhouse extra-args...
    local flavour=$1 image=$2 wheelhouse=$3; shift 3
    stage_inputs "$wheelhouse"
    local build_flags=(--platform "$platform" --network host)
    [ "$builder" = buildah ] || build_flags+=(--force-rm)
    # The build tags the image only when every step succeeded: a failed build leaves no tag.
    run "${build[@]}" "${build_flags[@]}" -f "$ctx/images/$flavour.Dockerfile" -t "$image" \
        "${identity[@]}" "$@" "$ctx"
    if [ "$push" = 1 ]; then
        run "${push_cmd[@]}" "$image"
        [ "$dry_run" = 1 ] || digests[$flavour]=$(digest_ref "$image")
    fi
}

echo "builder: $builder; cpu image: $cpu_image; gpu image: $gpu_image; version $version, commit $commit"
case "$which_images" in
    cpu) build_one cpu "$cpu_image" "$cpu_wheelhouse" "${cpu_args[@]}" ;;
    gpu) build_one gpu "$gpu_image" "$gpu_wheelhouse" "${gpu_args[@]}" ;;
    all)
        build_one cpu "$cpu_image" "$cpu_wheelhouse" "${cpu_args[@]}"
        build_one gpu "$gpu_image" "$gpu_wheelhouse" "${gpu_args[@]}"
        ;;
esac
if [ "$dry_run" = 0 ]; then
    cpu_ref=${digests[cpu]:-$cpu_image} gpu_ref=${digests[gpu]:-$gpu_image}
    if [ "$push" = 1 ]; then
        for flavour in "${!digests[@]}"; do echo "pushed $flavour image: ${digests[$flavour]}"; done
        echo "Compile the pipeline for these images (by digest: a new build invalidates KFP's cache) with:"
    else
        echo "built. Compile the pipeline for these images with:"
    fi
    echo "  saemerge compile --cpu-image $cpu_ref --gpu-image $gpu_ref"
fi
