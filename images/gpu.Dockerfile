# saemerge GPU image: evaluation with lm-eval on CUDA (evaluate, final_evaluate).
# Build with images/build.sh.
#
# CUDA comes from torch's own wheels: torch 2.13.0 on PyPI is built for CUDA 13.0 and pins
# cuda-toolkit 13.0.3 and cuDNN 9.20 as pip packages, so the image needs no CUDA base (an
# nvidia/cuda runtime base would add a second, unused CUDA copy and a different Python than
# the one images/constraints.txt was resolved and tested with). Nodes need an NVIDIA driver
# >= 580 (CUDA 13.0) and the NVIDIA container toolkit / GPU operator, which injects the
# driver libraries. For older drivers build with a CUDA 12.x torch index, e.g.
#   images/build.sh --gpu-build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
#
# Two stages, as in cpu.Dockerfile: the build inputs (CA bundle, wheelhouse) are seen by the
# `deps` stage only; the final stage copies its /opt/venv.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

FROM ${BASE_IMAGE} AS deps
ARG TORCH_INDEX_URL=""
ARG PIP_VERSION=26.3
# WITH_VLLM=1 adds vLLM for lm-eval's vllm backend; 0.27.1 is built against torch 2.13.0.
ARG WITH_VLLM=0
ARG VLLM_VERSION=0.27.1
ENV VIRTUAL_ENV=/opt/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BUILD_INPUTS=/build-inputs
WORKDIR /opt/saemerge
COPY images/install.sh images/constraints.txt images/
COPY images/build-inputs/ /build-inputs/
RUN images/install.sh deps gpu

FROM ${BASE_IMAGE}
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    SAEMERGE_IMAGE_FLAVOUR=gpu

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

ARG SAEMERGE_VERSION=unknown
ARG SAEMERGE_COMMIT=unknown
LABEL org.opencontainers.image.title="saemerge-gpu" \
      org.opencontainers.image.description="Sparsity-Aware Evolution model merging: CUDA evaluation steps" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${SAEMERGE_VERSION}" \
      org.opencontainers.image.revision="${SAEMERGE_COMMIT}"
ENV SAEMERGE_COMMIT=${SAEMERGE_COMMIT}

USER 1000
WORKDIR /home/saemerge
ENV HOME=/home/saemerge
CMD ["saemerge", "--help"]
