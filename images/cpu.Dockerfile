# syntax=docker/dockerfile:1
# saemerge CPU image: the light pipeline steps (init, schedule, sample, prune, pair, merge,
# archive update, report) and `saemerge` itself. Build with images/build.sh.
FROM python:3.11.13-slim-bookworm

# torch's CPU wheel keeps the image ~2 GB smaller than the CUDA build from PyPI.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_VERSION=26.3

LABEL org.opencontainers.image.title="saemerge-cpu" \
      org.opencontainers.image.description="Sparsity-Aware Evolution model merging: CPU pipeline steps" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Group 0 and group-writable home: runs under a fixed uid (1000) or an arbitrary one
# (OpenShift-style restricted SCCs), with a writable HOME for HF/lm-eval caches.
RUN useradd --uid 1000 --gid 0 --create-home --home-dir /home/saemerge --shell /usr/sbin/nologin saemerge \
    && chmod g=u /home/saemerge

WORKDIR /opt/saemerge
COPY images/install.sh images/constraints.txt images/
RUN images/install.sh deps cpu

COPY pyproject.toml README.md ./
COPY src src
COPY components components
COPY pipeline pipeline
RUN images/install.sh app

USER 1000
WORKDIR /home/saemerge
ENV HOME=/home/saemerge
# kfp runs components as `sh -ec '... python3 -m kfp.dsl.executor_main ...'`; the default
# command is the CLI for interactive use.
CMD ["saemerge", "--help"]
