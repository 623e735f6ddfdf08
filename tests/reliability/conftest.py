"""Reliability cases drive the same real processes as tests/e2e, with short leases."""

from __future__ import annotations

import pytest

FAST_RECOVERY = {
    "VOXQUEUE_LEASE_SECONDS": "4",
    "VOXQUEUE_STALE_SECONDS": "6",
    "VOXQUEUE_HOUSEKEEPING_INTERVAL": "1",
    "VOXQUEUE_MAX_DELIVERIES": "3",
}


@pytest.fixture
def pipeline(pipeline):
    pipeline.env.update(FAST_RECOVERY)
    return pipeline
