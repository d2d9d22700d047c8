"""Errors reach the SDK as its own exception classes, with message, type, code and
param as the upstream (or flexgate) wrote them."""

from __future__ import annotations

import openai
import pytest

from helpers import fault, make_client, new_id, sim_requests

MESSAGES = [{"role": "user", "content": "hi"}]


def test_400_bad_request_from_upstream(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-5-mini", messages=[])
    e = caught.value
    assert e.status_code == 400
    assert e.type == "invalid_request_error"
    assert e.code == "invalid_value"
    assert e.param == "messages"
    assert "Invalid 'messages'" in e.message
    assert e.response.headers["x-flexgate-class"]


def test_400_bad_request_from_flexgate(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-5-mini", messages=MESSAGES, extra_headers={"x-flexgate-class": "no-such-class"}
        )
    e = caught.value
    assert e.type == "invalid_request_error"
    assert e.code == "unknown_class"
    assert "no-such-class" in e.message and "interactive" in e.message


def test_401_authentication_error(lane):
    # The sim accepts any bearer key, so send a non-bearer scheme to be refused.
    bad = make_client(lane, default_headers={"Authorization": "Basic c2RrOnN1aXRl"})
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="gpt-5-mini", messages=MESSAGES)
    e = caught.value
    assert e.status_code == 401
    assert e.type == "invalid_request_error"
    assert e.code == "invalid_api_key"
    assert "API key" in e.message


def test_404_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-no-such-model", messages=MESSAGES)
    e = caught.value
    assert e.status_code == 404
    assert e.code == "model_not_found"
    assert e.param == "model"
    assert "gpt-no-such-model" in e.message


def test_404_not_found_on_responses(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-no-such-model", input="hi")
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize("step,code", [("429-quota", "insufficient_quota"), ("429-credit", "credit_balance_exhausted")])
def test_429_billing_is_a_rate_limit_error_attempted_once(client, step, code):
    rid = new_id()
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES, extra_headers=fault(rid, step))
    e = caught.value
    assert e.status_code == 429
    assert e.type == "insufficient_quota"
    assert e.code == code
    assert e.response.headers["x-should-retry"] == "false"
    entries = sim_requests(rid)
    assert len(entries) == 1, f"a billing 429 must be sent upstream once, got {len(entries)}"
    assert e.response.headers["x-flexgate-attempts"] == "1"
