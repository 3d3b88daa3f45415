#!/bin/sh
# Installs saemerge into the virtual environment $VIRTUAL_ENV, in two phases so that an
# image rebuild after a source change reuses the (large) dependency layer:
#
#   images/install.sh deps cpu|gpu   # venv + torch + every pinned dependency (needs only images/)
#   images/install.sh app            # saemerge itself from the source tree in the current directory
#
# Run from the directory holding pyproject.toml, README.md, src/, components/, pipeline/ and
# images/. The Dockerfiles call exactly these commands, and tests/integration/test_images.py
# replays them (from a copy holding only what the Dockerfile COPYs) into a fresh venv.
#
# Environment (the Dockerfiles set these from build arguments):
#   VIRTUAL_ENV      where the venv lives (created if missing, with $PYTHON, default python3)
#   TORCH_INDEX_URL  install torch from this index (the CPU or a CUDA 12.x wheel index);
#                    empty: torch comes from PyPI like every other pin (CUDA 13.0 on Linux)
#   WITH_VLLM        1: also install vllm==$VLLM_VERSION (gpu only; vllm pins torch exactly,
#                    so the version must be one built against the torch pin)
#   PIP_VERSION      pip is upgraded to this version first
#   BUILD_INPUTS     a folder of optional inputs to the deps phase (images/build-inputs/):
#                    ca.crt        a CA bundle pip trusts (a TLS-inspecting proxy, a private index)
#                    wheelhouse/   wheels pip looks at first; a torch wheel of the pinned release
#                                  there is installed instead of TORCH_INDEX_URL's or PyPI's
set -eu

here=$(cd "$(dirname "$0")" && pwd)
constraints="$here/constraints.txt"
phase=${1:?usage: install.sh deps cpu|gpu | install.sh app}
: "${VIRTUAL_ENV:?VIRTUAL_ENV must name the venv to install into}"
pip="$VIRTUAL_ENV/bin/python -m pip"

# Every pip call (and the isolated build of saemerge's wheel, which reads the environment)
# resolves against the pins; a package outside them is still allowed but gets reported by
# the freeze below.
PIP_CONSTRAINT="$constraints"
export PIP_CONSTRAINT

case "$phase" in
deps)
    flavour=${2:?usage: install.sh deps cpu|gpu}
    case "$flavour" in cpu|gpu) ;; *) echo "install.sh: unknown flavour '$flavour' (cpu or gpu)" >&2; exit 2 ;; esac
    if [ ! -x "$VIRTUAL_ENV/bin/python" ]; then
        "${PYTHON:-python3}" -m venv "$VIRTUAL_ENV"
    fi
    inputs=${BUILD_INPUTS:-}
    if [ -n "$inputs" ] && [ -f "$inputs/ca.crt" ]; then
        PIP_CERT="$inputs/ca.crt"
        export PIP_CERT
    fi
    wheelhouse=""
    if [ -n "$inputs" ] && [ -d "$inputs/wheelhouse" ]; then
        wheelhouse="$inputs/wheelhouse"
        PIP_FIND_LINKS="$wheelhouse"
        export PIP_FIND_LINKS
    fi
    $pip install --quiet "pip==${PIP_VERSION:-26.3}"
    torch_version=$(sed -n 's/^torch==//p' "$constraints")
    torch_wheel=""
    for candidate in "$wheelhouse"/torch-"$torch_version"-*.whl "$wheelhouse"/torch-"$torch_version"+*.whl; do
        if [ -n "$wheelhouse" ] && [ -f "$candidate" ]; then torch_wheel=$candidate; fi
    done
    if [ -n "$torch_wheel" ]; then
        # The wheelhouse's torch (e.g. the CPU wheel, where the torch index cannot be reached).
        $pip install --quiet --no-deps --no-index --find-links "$wheelhouse" "torch==$torch_version"
    elif [ -n "${TORCH_INDEX_URL:-}" ]; then
        # Only torch from the special index; its dependencies come from PyPI in the next step.
        $pip install --quiet --no-deps --index-url "$TORCH_INDEX_URL" "torch==$torch_version"
    fi
    # The whole pinned closure: an installed torch of the pinned release (+cpu/+cu128) satisfies it.
    $pip install --quiet -r "$constraints"
    if [ "$flavour" = gpu ] && [ "${WITH_VLLM:-0}" = 1 ]; then
        # vllm brings its own dependency set; keep torch at the pin so a mismatched
        # VLLM_VERSION fails here instead of silently swapping torch.
        PIP_CONSTRAINT="" $pip install --quiet "vllm==${VLLM_VERSION:?WITH_VLLM=1 needs VLLM_VERSION}" "torch==$torch_version"
    fi
    ;;
app)
    # --no-deps: every dependency is already in place; pip check proves none is missing.
    # --no-build-isolation: the build backend (setuptools, pinned) is in the venv, so this
    # phase needs no network (and no CA bundle: the image's last stage never sees one).
    $pip install --quiet --no-deps --no-build-isolation .
    $pip check
    $pip freeze --all > "$VIRTUAL_ENV/pip-freeze.txt"
    rm -rf build ./*.egg-info src/*.egg-info
    ;;
*)
    echo "install.sh: unknown phase '$phase' (deps or app)" >&2
    exit 2
    ;;
esac
