"""A request its budget cannot cover gets OpenAI's own quota error, which the SDK raises as
`RateLimitError` with `insufficient_quota` and does not retry (`x-should-retry: false`).

Runs against the budgeted gateway tests/sdk/run.sh starts (FLEXGATE_BUDGET_URL): its one
client, key `sk-sdk-budget`, may spend $0.000001 a day, less than one request's estimate,
so even its first request is refused.
"""

from __future__ import annotations

import os
import re
import urllib.request

import openai
import pytest

MESSAGES = [{"role": "user", "content": "hi"}]


def budget_url() -> str:
    url = os.environ.get("FLEXGATE_BUDGET_URL")
    if not url:
        pytest.exit("FLEXGATE_BUDGET_URL is not set: run this suite through tests/sdk/run.sh", returncode=2)
    return url


def refused_count() -> float:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(budget_url() + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^flexgate_budget_refused_total\{client="sdk-budget"\} (\S+)$', text, re.M)
    assert m, "the refusal counter is exported for the budgeted client"
    return float(m.group(1))


def test_a_request_beyond_the_budget_gets_a_quota_error_the_sdk_does_not_retry():
    client = openai.OpenAI(base_url=budget_url() + "/v1", api_key="sk-sdk-budget", max_retries=2)
    before = refused_count()
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES)
    e = caught.value
    assert e.status_code == 429
    assert e.type == "insufficient_quota"
    assert e.code == "flexgate_budget_exceeded"
    assert "`sdk-budget`" in e.message and "resets at" in e.message
    assert "This request may cost up to $" in e.message, e.message
    assert e.response.headers["x-should-retry"] == "false"
    assert int(e.response.headers["retry-after"]) > 0
    # Nothing was spent: what is left is the whole limit, too little for this request.
    assert e.response.headers["x-flexgate-budget-remaining-usd"] == "0.000001"
    assert refused_count() == before + 1, "one refusal: the SDK did not retry"
