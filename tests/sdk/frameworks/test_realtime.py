"""The official SDK's Realtime client (`client.realtime.connect`) against the simulator's
Realtime endpoint: session events, a text response streamed in deltas, and usage in
`response.done`. It dials the simulator directly (SIM_URL): passing Realtime through
flexgate is the gateway's WebSocket passthrough, tested with the gateway."""

from __future__ import annotations

import os

import openai
import pytest
from conftest import API_KEY


@pytest.fixture(scope="module")
def sim_base_url() -> str:
    url = os.environ.get("SIM_URL")
    if not url:
        pytest.exit("SIM_URL is not set: run this suite through tests/sdk/run.sh", returncode=2)
    return url + "/v1"


def test_realtime_text_session(sim_base_url):
    client = openai.OpenAI(base_url=sim_base_url, api_key=API_KEY)
    with client.realtime.connect(model="gpt-realtime") as connection:
        assert connection.recv().type == "session.created"
        connection.session.update(session={"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief"})
        assert connection.recv().type == "session.updated"
        connection.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}
        )
        connection.response.create()
        deltas = []
        for event in connection:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            if event.type == "response.done":
                done = event
                break
    assert deltas
    assert done.response.status == "completed"
    assert done.response.usage.output_tokens == len(deltas)
    assert done.response.usage.input_tokens > 0
    assert done.response.output[0].content[0].text == "".join(deltas)
