"""Fixtures for the official Python SDK suite: one lane (`/v1` or `/flex/v1`) per case
variant, and an SDK client for it. Run through tests/sdk/run.sh, which starts
`flexgate sim` and `flexgate serve` first."""

from __future__ import annotations

import openai
import pytest

from helpers import LANES, make_client


@pytest.fixture(params=list(LANES), ids=["v1", "flex"])
def lane(request) -> str:
    return request.param


@pytest.fixture
def expect(lane) -> dict:
    """What the lane promises: class, served tier, and the body's `service_tier`."""
    return LANES[lane]


@pytest.fixture
def client(lane) -> openai.OpenAI:
    return make_client(lane)
