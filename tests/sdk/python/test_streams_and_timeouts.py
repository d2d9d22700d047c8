"""A stream cut mid-way raises in the SDK instead of ending quietly, and a slow flex
request under the SDK's 15-minute timeout (OpenAI's advice for flex) is served on flex."""

from __future__ import annotations

import time

import openai
import pytest

from helpers import fault, header, make_client, new_id, sim_requests

MESSAGES = [{"role": "user", "content": "Tell me a long story"}]


def test_chat_stream_cut_midway_raises(client):
    rid = new_id()
    stream = client.chat.completions.create(
        model="gpt-5-mini", messages=MESSAGES, stream=True, max_tokens=200, extra_headers=fault(rid, "cut")
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert received, "the cut comes after some chunks reached the client"
    assert "flexgate" in caught.value.message
    assert len(sim_requests(rid)) == 1, "nothing is retried once bytes reached the client"


def test_responses_stream_cut_midway_raises(client):
    rid = new_id()
    stream = client.responses.create(
        model="gpt-5-mini", input="Tell me a long story", stream=True, extra_headers=fault(rid, "cut")
    )
    kinds = []
    with pytest.raises(openai.APIError):
        for event in stream:
            kinds.append(event.type)
    assert "response.completed" not in kinds


def test_slow_flex_with_the_sdks_15_minute_timeout():
    client = make_client("/flex/v1", timeout=900.0, max_retries=2)
    rid = new_id()
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5-mini", messages=MESSAGES, extra_headers=fault(rid, "flex:slow:3s")
    )
    elapsed = time.monotonic() - started
    assert elapsed >= 3.0
    assert raw.headers["x-flexgate-tier"] == "flex"
    assert raw.headers["x-flexgate-escalated"] == "false"
    assert raw.headers["x-flexgate-attempts"] == "1"
    assert raw.parse().service_tier == "flex"
    (entry,) = sim_requests(rid)
    assert header(entry, "x-stainless-read-timeout") == "900.0"
