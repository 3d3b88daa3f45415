# saemerge CPU image: the light pipeline steps (init, schedule, sample, prune, pair, merge,
# archive update, report) and `saemerge` itself. Build with images/build.sh.
#
# Two stages. `deps` builds the virtual environment (torch and every pin); it alone sees the
# optional build inputs in images/build-inputs/ (a CA bundle for pip, a wheelhouse), and the
# final stage copies only its /opt/venv, so no CA file and no wheel reaches any layer of the
# image. The final stage adds saemerge from the source without a network (the build backend,
# setuptools, is one of the pins already in the venv).
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

FROM ${BASE_IMAGE} AS deps
# torch's CPU wheel keeps the image ~2 GB smaller than the CUDA build from PyPI. A torch wheel
# of the pinned release in the wheelhouse wins over the index (air-gapped builds).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_VERSION=26.3
ENV VIRTUAL_ENV=/opt/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BUILD_INPUTS=/build-inputs
WORKDIR /opt/saemerge
COPY images/install.sh images/constraints.txt images/
COPY images/build-inputs/ /build-inputs/
RUN images/install.sh deps cpu

FROM ${BASE_IMAGE}
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SAEMERGE_IMAGE_FLAVOUR=cpu

# Group 0 and group-writable home: runs under a fixed uid (1000) or an arbitrary one
# (OpenShift-style restricted SCCs), with a writable HOME for HF/lm-eval caches.
# /saemerge-cache: the cache volume's mount point, owned by that user, so a volume the engine
# fills from the image (a docker named volume) is writable by it too.
RUN useradd --uid 1000 --gid 0 --create-home --home-dir /home/saemerge --shell /usr/sbin/nologin saemerge \
    && mkdir /saemerge-cache && chown 1000:0 /saemerge-cache \
    && chmod g=u /home/saemerge /saemerge-cache

COPY --from=deps /opt/venv /opt/venv
WORKDIR /opt/saemerge
COPY images/install.sh images/constraints.txt images/
COPY pyproject.toml README.md ./
COPY src src
COPY components components
COPY pipeline pipeline
RUN images/install.sh app

# Identity last, so a new commit rebuilds no layer above: `saemerge --version` prints these.
ARG SAEMERGE_VERSION=unknown
ARG SAEMERGE_COMMIT=unknown
LABEL org.opencontainers.image.title="saemerge-cpu" \
      org.opencontainers.image.description="Sparsity-Aware Evolution model merging: CPU pipeline steps" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${SAEMERGE_VERSION}" \
      org.opencontainers.image.revision="${SAEMERGE_COMMIT}"
ENV SAEMERGE_COMMIT=${SAEMERGE_COMMIT}

USER 1000
WORKDIR /home/saemerge
ENV HOME=/home/saemerge
# kfp runs components as `sh -ec '... python3 -m kfp.dsl.executor_main ...'`; the default
# command is the CLI for interactive use.
CMD ["saemerge", "--help"]
