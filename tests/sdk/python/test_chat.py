"""Chat Completions through both lanes with the official Python SDK: plain, streamed,
streamed with `include_usage`, and the raw response with flexgate's headers."""

from __future__ import annotations

from helpers import new_id, sim_requests

MESSAGES = [{"role": "user", "content": "Say hello to the gateway"}]


def test_chat_non_streaming(client, expect):
    r = client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES)
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.service_tier == expect["service_tier"]
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r._request_id, "the SDK exposes x-request-id"


def test_chat_streaming_without_usage(client, expect):
    # flexgate asks upstream for usage to meter the stream; the client did not ask for
    # it, so the extra usage-only chunk must not reach the SDK.
    chunks = list(client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES, stream=True))
    assert chunks, "no chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.usage is None for c in chunks), "a usage chunk leaked to a client that did not ask for one"
    assert all(c.choices for c in chunks), "a chunk without choices leaked"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.service_tier for c in chunks} == {expect["service_tier"]}


def test_chat_streaming_with_include_usage(client, expect):
    rid = new_id()
    stream = client.chat.completions.create(
        model="gpt-5-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": rid},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [], "the usage chunk comes last, with empty choices"
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert last.service_tier == expect["service_tier"]
    (entry,) = sim_requests(rid)
    assert entry["include_usage"] is True and entry["stream"] is True


def test_with_raw_response_shows_flexgate_headers(client, expect):
    raw = client.chat.completions.with_raw_response.create(model="gpt-5-mini", messages=MESSAGES)
    h = raw.headers
    assert h["x-flexgate-class"] == expect["class"]
    assert h["x-flexgate-tier"] == expect["tier"]
    assert h["x-flexgate-attempts"] == "1"
    assert h["x-flexgate-escalated"] == "false"
    assert float(h["x-flexgate-cost-usd"]) > 0
    assert h["x-request-id"]
    completion = raw.parse()
    assert completion.service_tier == expect["service_tier"]


def test_raw_streaming_response_shows_flexgate_headers(client, expect):
    with client.chat.completions.with_streaming_response.create(
        model="gpt-5-mini", messages=MESSAGES, stream=True
    ) as raw:
        assert raw.headers["x-flexgate-class"] == expect["class"]
        assert raw.headers["x-flexgate-tier"] == expect["tier"]
        assert "x-flexgate-cost-usd" not in raw.headers, "a stream's cost is unknown when headers are sent"
        chunks = list(raw.parse())
    assert chunks[-1].choices[0].finish_reason == "stop"
