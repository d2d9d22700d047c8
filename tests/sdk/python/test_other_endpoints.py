"""Endpoints that are not tier-routed still pass through both lanes intact."""

from __future__ import annotations


def test_embeddings(client):
    # The Python SDK asks for base64 and decodes it to floats itself.
    r = client.embeddings.create(model="text-embedding-3-small", input=["flexgate", "gateway"])
    assert len(r.data) == 2
    assert len(r.data[0].embedding) > 0
    assert all(isinstance(x, float) for x in r.data[0].embedding[:8])
    assert r.usage.prompt_tokens > 0


def test_embeddings_raw_headers(client, expect):
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="flexgate")
    assert raw.headers["x-flexgate-class"] == expect["class"]
    assert raw.parse().data[0].embedding


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "gpt-5-mini" in ids
    assert "text-embedding-3-small" in ids


def test_models_retrieve(client):
    m = client.models.retrieve("gpt-5")
    assert m.id == "gpt-5"
    assert m.object == "model"
