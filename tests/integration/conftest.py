"""Fixtures for integration tests: a real embedded S3 server (SeaweedFS ``weed mini``).

``s3_store`` starts one server for the whole session (on 127.0.0.1, free ports, generated
credentials, data under the session's tmp dir) and stops it at the end. ``s3_env`` puts its
AWS_* variables into ``os.environ`` for one test (subprocesses, e.g. kfp.local steps, inherit
them) with a fresh ``SAEMERGE_CACHE``; ``s3_prefix`` adds a fresh ``s3://`` prefix.
"""

from __future__ import annotations

import re
import secrets

import pytest

from saemerge.objectstore import Store

TEST_BUCKET = "saemerge-test"


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory):
    """A running Store with bucket ``saemerge-test``; ``.env()``, ``.readonly_env()``, ``.endpoint``."""
    with Store(tmp_path_factory.mktemp("s3store"), buckets=[TEST_BUCKET]) as store:
        yield store


@pytest.fixture
def s3_env(s3_store, monkeypatch, tmp_path):
    """The admin identity of ``s3_store`` in os.environ, and an empty SAEMERGE_CACHE."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    for key, value in s3_store.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SAEMERGE_CACHE", str(tmp_path / "saemerge-cache"))
    return s3_store


@pytest.fixture
def s3_prefix(s3_env, request) -> str:
    """A fresh ``s3://saemerge-test/<test name>-<random>`` prefix (with ``s3_env`` set)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60]
    return f"s3://{TEST_BUCKET}/{name}-{secrets.token_hex(3)}"
