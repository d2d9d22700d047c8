"""The Responses API through both lanes with the official Python SDK."""

from __future__ import annotations


def test_responses_non_streaming(client, expect):
    r = client.responses.create(model="gpt-5-mini", input="Write one sentence about flex processing.")
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output_text
    assert r.service_tier == expect["service_tier"]
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0


def test_responses_streaming(client, expect):
    events = list(client.responses.create(model="gpt-5-mini", input="Stream a sentence.", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == final.output_text
    assert final.usage is not None and final.usage.output_tokens > 0
    assert final.service_tier == expect["service_tier"]
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers)


def test_responses_stream_helper(client, expect):
    # The SDK's higher-level helper accumulates the events into a final response.
    with client.responses.stream(model="gpt-5-mini", input="Stream a sentence.") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text
    assert final.service_tier == expect["service_tier"]
