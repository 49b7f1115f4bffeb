"""End-to-end fixtures: a Redis broker is required (``make test`` finds the local one); the libvirt lab."""

from __future__ import annotations

import os
from typing import Any

import pytest


@pytest.fixture(scope="session")
def broker_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("end-to-end tests need Redis: set TEST_REDIS_URL (make test does when Redis answers)")
    return url


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Any:
    """The libvirt lab of this test session (started once, see ``tests/lab/session.py``)."""
    from tests.lab.session import lab_for

    return lab_for(request.config)
