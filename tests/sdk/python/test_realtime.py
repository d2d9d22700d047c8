"""The SDK's Realtime client (`client.realtime.connect`, over `websockets`) through
flexgate's WebSocket passthrough, against the simulator's Realtime endpoint: a session
on each lane, a 2 MiB frame each way, usage counted with endpoint `realtime`, and a
refused upgrade surfacing as the upstream's status. On gateways of their own: managed
auth (the SDK presents a gateway key, the upstream gets flexgate's key) and SIGTERM
with a session open (closed with 1001 once the drain time is over)."""

from __future__ import annotations

import json
import signal
import threading
import time

import openai
import pytest
import websockets

from helpers import gateway_url, header, make_client, metric, metrics_text, new_id, own_gateway, sim_requests

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


def settled(before: str, klass: str, turns: int, url: str | None = None) -> str:
    """Metrics once `turns` more realtime turns of `klass` are counted (they are counted
    as the gateway relays `response.done`, so normally at once)."""
    deadline = time.monotonic() + 5
    while True:
        after = metrics_text(url)
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


UPSTREAM_KEY = "sk-upstream-sdk-0001"
GATEWAY_KEY = "fg-sdk-realtime-0002"
MANAGED = '[auth]\nmode = "managed"\n[[auth.keys]]\nclient = "sdk"\nenv = "SDK_GATEWAY_KEY"\n'


def test_managed_auth_the_sdk_presents_a_gateway_key_and_the_upstream_gets_flexgates(tmp_path):
    env = {"OPENAI_API_KEY": UPSTREAM_KEY, "SDK_GATEWAY_KEY": GATEWAY_KEY}
    with own_gateway(tmp_path, MANAGED, env) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)
        request_id = new_id()
        with client.realtime.connect(model="gpt-realtime", extra_headers={"x-request-id": request_id}) as connection:
            assert connection.recv().type == "session.created"
            text, _, usage = run_turn(connection)
        assert text.strip()
        # The SDK sends its key as `Authorization: Bearer`; the simulator saw flexgate's.
        [handshake] = sim_requests(request_id)
        assert header(handshake, "authorization") == f"Bearer {UPSTREAM_KEY}"
        after = settled("", "interactive", 1, gw.url)
        assert metric(after, REQUESTS, endpoint="realtime", outcome="success") == 1
        assert metric(after, "flexgate_tokens_total", model="other", kind="input") == usage.input_tokens

        # Any other key is refused by flexgate itself, in OpenAI's error shape.
        wrong = openai.OpenAI(base_url=gw.url + "/v1", api_key=UPSTREAM_KEY, max_retries=0)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            with wrong.realtime.connect(model="gpt-realtime") as connection:
                connection.recv()
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"


def test_sigterm_closes_an_open_sdk_session_with_1001_after_the_drain_time(tmp_path):
    with own_gateway(tmp_path, '[server]\ndrain_timeout = "3s"\n') as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-sdk-suite", max_retries=0)
        with client.realtime.connect(model="gpt-realtime") as connection:
            assert connection.recv().type == "session.created"
            assert metric(metrics_text(gw.url), "flexgate_websocket_sessions") == 1
            gw.process.send_signal(signal.SIGTERM)
            # Draining: the open session still works …
            text, _, _ = run_turn(connection)
            assert text.strip()
            # … until the drain time is over; then flexgate closes it as going away. (A
            # gateway that never closes it is killed, which fails the test, not hangs it.)
            watchdog = threading.Timer(30, gw.process.kill)
            watchdog.start()
            try:
                with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                    while True:
                        connection.recv()
            finally:
                watchdog.cancel()
            assert closed.value.rcvd is not None, "flexgate sent no close frame"
            assert closed.value.rcvd.code == 1001
        assert gw.process.wait(timeout=10) == 0
        assert '"end":"shutdown"' in gw.log.read_text()
