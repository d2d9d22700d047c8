"""Deadlines the SDK announces, and errors flexgate itself answers after giving up:
the SDK's own timeout (`x-stainless-read-timeout`) bounds the request, flex escalates in
time, and a request flexgate already timed out or retried is not sent again."""

from __future__ import annotations

import time

import openai
import pytest

from helpers import fault, header, make_client, new_id, sim_requests

MESSAGES = [{"role": "user", "content": "hi"}]


def test_the_sdks_own_timeout_makes_flex_escalate_in_time():
    # Flex would take 30s here. timeout=10s: flexgate's deadline is 10s minus its 5s
    # margin, flex gets half of that (2.5s), then the request moves to standard, well
    # before the SDK gives up. Under the class deadline alone (15m) it would wait.
    client = make_client("/flex/v1", timeout=10.0, max_retries=0)
    rid = new_id()
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5-mini", messages=MESSAGES, extra_headers=fault(rid, "flex:slow:30s")
    )
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 8.0, f"took {elapsed:.1f}s"
    assert raw.headers["x-flexgate-escalated"] == "true"
    assert raw.headers["x-flexgate-tier"] == "standard"
    assert raw.headers["x-flexgate-attempts"] == "2"
    entries = sim_requests(rid)
    assert header(entries[0], "x-stainless-read-timeout") == "10.0"
    assert [e["served_tier"] for e in entries][-1] == "default"


def test_streaming_flex_429s_are_absorbed_before_the_first_byte():
    client = make_client("/flex/v1", max_retries=0)
    rid = new_id()
    with client.chat.completions.with_streaming_response.create(
        model="gpt-5-mini", messages=MESSAGES, stream=True, extra_headers=fault(rid, "429-capacity,429-capacity,ok")
    ) as raw:
        assert raw.headers["x-flexgate-attempts"] == "3"
        chunks = list(raw.parse())
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.service_tier for c in chunks} == {"flex"}


def test_a_request_flexgate_timed_out_is_not_retried_by_the_sdk():
    client = make_client("/v1", max_retries=2)
    rid = new_id()
    headers = {**fault(rid, "hang"), "x-flexgate-deadline": "1s"}
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES, extra_headers=headers)
    e = caught.value
    assert e.status_code == 504
    assert e.type == "timeout"
    assert e.code in ("upstream_timeout", "deadline_exceeded")
    assert e.response.headers["x-should-retry"] == "false"
    entries = sim_requests(rid)
    assert len(entries) == 1, entries
    assert {header(x, "x-stainless-retry-count") for x in entries} == {"0"}


def test_malformed_upstream_answers_are_retried_by_flexgate_only():
    client = make_client("/v1", max_retries=2)
    rid = new_id()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES, extra_headers=fault(rid, "malformed"))
    e = caught.value
    assert e.status_code == 502
    assert e.code == "upstream_protocol_error"
    assert e.response.headers["x-should-retry"] == "false"
    entries = sim_requests(rid)
    assert len(entries) == int(e.response.headers["x-flexgate-attempts"]) == 3
