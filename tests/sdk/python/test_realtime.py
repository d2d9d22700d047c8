"""The SDK's Realtime client (`client.realtime.connect`, over `websockets`) through
flexgate's WebSocket passthrough, against the simulator's Realtime endpoint: a session
on each lane, a 2 MiB frame each way, usage counted with endpoint `realtime`, and a
refused upgrade surfacing as the upstream's status."""

from __future__ import annotations

import time

import pytest
import websockets

from helpers import gateway_url, make_client, metric, metrics_text

REQUESTS = "flexgate_requests_total"


def run_turn(connection, **response) -> tuple[str, int, object]:
    """One `response.create` to its `response.done`: the text, the audio characters
    received, and the usage."""
    if response:
        connection.response.create(response=response)
    else:
        connection.response.create()
    text, audio = "", 0
    for event in connection:
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.output_audio.delta":
            audio += len(event.delta)
        elif event.type == "response.done":
            return text, audio, event.response.usage
        elif event.type == "error":
            pytest.fail(f"error event: {event}")
    pytest.fail("the session ended before response.done")


def settled(before: str, klass: str, turns: int) -> str:
    """Metrics once `turns` more realtime turns of `klass` are counted (they are counted
    as the gateway relays `response.done`, so normally at once)."""
    deadline = time.monotonic() + 5
    while True:
        after = metrics_text()
        grown = metric(after, REQUESTS, endpoint="realtime", **{"class": klass}) - metric(
            before, REQUESTS, endpoint="realtime", **{"class": klass}
        )
        if grown >= turns or time.monotonic() > deadline:
            return after
        time.sleep(0.05)


def test_a_realtime_session_through_the_gateway_is_counted_per_turn(lane, expect):
    klass = expect["class"]
    before = metrics_text()
    with make_client(lane).realtime.connect(model="gpt-realtime") as connection:
        connection.session.update(session={"type": "realtime", "instructions": "Be brief."})
        for event in connection:
            if event.type == "session.updated":
                assert event.session.instructions == "Be brief."
                break
        text, _, first = run_turn(connection)
        assert text.strip(), "the answer has text"
        assert first.input_tokens > 0 and first.output_tokens > 0
        _, _, second = run_turn(connection)
    after = settled(before, klass, 2)
    grew = metric(after, REQUESTS, endpoint="realtime", outcome="success", **{"class": klass}) - metric(
        before, REQUESTS, endpoint="realtime", outcome="success", **{"class": klass}
    )
    assert grew == 2
    tokens = metric(after, "flexgate_tokens_total", model="other", kind="input") - metric(
        before, "flexgate_tokens_total", model="other", kind="input"
    )
    assert tokens == first.input_tokens + second.input_tokens


def test_frames_of_two_mebibytes_cross_both_ways():
    size = 2 * 1024 * 1024 + 17
    with make_client("/v1").realtime.connect(model="gpt-realtime") as connection:
        connection.input_audio_buffer.append(audio="B" * size)
        _, audio, usage = run_turn(connection, metadata={"sim_audio_bytes": str(size)})
    assert audio == size
    assert usage.input_token_details.audio_tokens == -(-size // 1000)
    assert usage.output_token_details.audio_tokens == -(-size // 1000)


def test_a_refused_upgrade_reaches_the_sdk_with_the_upstream_status():
    # The simulator has no Realtime endpoint under this path: its 404 comes through.
    client = make_client("/v1", websocket_base_url=gateway_url().replace("http", "ws", 1) + "/v1/nowhere")
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        with client.realtime.connect(model="gpt-realtime") as connection:
            connection.recv()
    assert refused.value.response.status_code == 404
