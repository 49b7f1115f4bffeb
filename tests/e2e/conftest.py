"""End-to-end fixtures: a Redis broker is required (``make test`` finds the local one)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def broker_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("end-to-end tests need Redis: set TEST_REDIS_URL (make test does when Redis answers)")
    return url
