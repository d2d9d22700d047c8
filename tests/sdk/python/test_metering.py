"""What flexgate records for requests made with the SDK: a stream the SDK reads to its
end counts as a success, with its cost."""

from __future__ import annotations

import time

import pytest

from helpers import metric, metrics_text

MESSAGES = [{"role": "user", "content": "Say hello to the gateway"}]
REQUESTS = "flexgate_requests_total"


def settled(before: str, klass: str) -> str:
    """Metrics once the gateway has settled one more chat request of `klass`."""
    deadline = time.monotonic() + 5
    while True:
        after = metrics_text()
        grown = metric(after, REQUESTS, endpoint="chat_completions", **{"class": klass}) - metric(
            before, REQUESTS, endpoint="chat_completions", **{"class": klass}
        )
        if grown >= 1 or time.monotonic() > deadline:
            return after
        time.sleep(0.05)


def test_a_chat_stream_read_to_done_is_a_success_with_cost(client, expect):
    klass = expect["class"]
    before = metrics_text()
    chunks = list(client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    after = settled(before, klass)

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew(REQUESTS, endpoint="chat_completions", outcome="success", **{"class": klass}) == 1
    assert grew(REQUESTS, endpoint="chat_completions", outcome="cancelled", **{"class": klass}) == 0
    assert grew("flexgate_cost_usd_total", model="gpt-5-mini", **{"class": klass}) > 0


def test_a_non_streaming_chat_is_a_success_with_cost(client, expect):
    klass = expect["class"]
    before = metrics_text()
    client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES)
    after = settled(before, klass)
    assert metric(after, REQUESTS, outcome="success", **{"class": klass}) - metric(
        before, REQUESTS, outcome="success", **{"class": klass}
    ) == 1
    assert metric(after, "flexgate_cost_usd_total", **{"class": klass}) > metric(
        before, "flexgate_cost_usd_total", **{"class": klass}
    )
