"""flexgate's retries and the SDK's: the SDK (max_retries=2) must not multiply what
flexgate already spent (`x-should-retry: false`), and what flexgate absorbs stays
invisible to the SDK."""

from __future__ import annotations

import openai
import pytest

from helpers import fault, header, make_client, new_id, sim_requests

MESSAGES = [{"role": "user", "content": "hi"}]


def sdk_attempts(entries: list[dict]) -> set[str]:
    """The SDK's own retry counters seen upstream: {"0"} means the SDK sent it once."""
    return {header(e, "x-stainless-retry-count") for e in entries}


def test_exhausted_5xx_on_the_urgent_lane_is_attempted_once_by_the_sdk():
    client = make_client("/v1", max_retries=2)
    rid = new_id()
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES, extra_headers=fault(rid, "500"))
    e = caught.value
    assert e.status_code == 500
    assert e.type == "server_error"
    assert e.response.headers["x-should-retry"] == "false"
    entries = sim_requests(rid)
    # interactive: max_attempts = 3, all spent by flexgate, none added by the SDK.
    assert len(entries) == 3, entries
    assert e.response.headers["x-flexgate-attempts"] == "3"
    assert sdk_attempts(entries) == {"0"}


def test_exhausted_rate_limit_is_a_rate_limit_error_attempted_once_by_the_sdk():
    client = make_client("/v1", max_retries=2)
    rid = new_id()
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES, extra_headers=fault(rid, "429-rate"))
    e = caught.value
    assert e.code == "rate_limit_exceeded"
    assert e.response.headers["x-should-retry"] == "false"
    entries = sim_requests(rid)
    assert len(entries) == 3
    assert sdk_attempts(entries) == {"0"}


def test_exhausted_flex_request_escalates_then_is_attempted_once_by_the_sdk():
    client = make_client("/flex/v1", max_retries=2)
    rid = new_id()
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="gpt-5-mini", messages=MESSAGES, extra_headers=fault(rid, "429-capacity")
        )
    e = caught.value
    h = e.response.headers
    assert h["x-should-retry"] == "false"
    assert h["x-flexgate-escalated"] == "true"
    entries = sim_requests(rid)
    assert int(h["x-flexgate-attempts"]) == len(entries)
    assert entries[0]["service_tier"] == "flex"
    assert entries[-1]["service_tier"] == "default", "escalation pins the standard tier, never `auto`"
    assert sdk_attempts(entries) == {"0"}


def test_flex_429s_are_absorbed_without_the_sdk_noticing():
    client = make_client("/flex/v1", max_retries=0)
    rid = new_id()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5-mini", messages=MESSAGES, extra_headers=fault(rid, "429-capacity,429-capacity,ok")
    )
    assert raw.headers["x-flexgate-attempts"] == "3"
    assert raw.headers["x-flexgate-tier"] == "flex"
    assert raw.headers["x-flexgate-escalated"] == "false"
    assert raw.parse().service_tier == "flex"
    assert [e["status"] for e in sim_requests(rid)] == [429, 429, 200]


def test_flex_outage_escalates_to_standard_before_the_deadline():
    client = make_client("/flex/v1", max_retries=0)
    rid = new_id()
    headers = {**fault(rid, "flex:429-capacity"), "x-flexgate-deadline": "3s"}
    raw = client.chat.completions.with_raw_response.create(model="gpt-5-mini", messages=MESSAGES, extra_headers=headers)
    assert raw.headers["x-flexgate-escalated"] == "true"
    assert raw.headers["x-flexgate-tier"] == "standard"
    assert raw.parse().service_tier == "default"
