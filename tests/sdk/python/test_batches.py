"""The Batch API flow with the official SDK against flexgate's own Files and Batches API
under the background lane: upload, create, poll, download; cancel; unknown ids (404);
validation failures reported with their line numbers, as OpenAI reports them."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest

from helpers import make_client

MODEL = "gpt-5-mini"


def batch_input(n: int, *, model: str = MODEL, prefix: str = "req") -> bytes:
    lines = []
    for i in range(n):
        body = {"model": model, "messages": [{"role": "user", "content": f"line {i}"}]}
        line = {"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        lines.append(json.dumps(line))
    return ("\n".join(lines) + "\n").encode()


def wait(client: openai.OpenAI, batch_id: str, ends: set[str], limit: float = 60.0):
    deadline = time.monotonic() + limit
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ends:
            return batch
        assert time.monotonic() < deadline, f"batch stuck in {batch.status}"
        time.sleep(0.1)


@pytest.fixture
def client() -> openai.OpenAI:
    return make_client("/flex/v1")


def test_upload_create_poll_download(client):
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(batch_input(25))), purpose="batch")
    assert uploaded.id.startswith("file-") and uploaded.purpose == "batch" and uploaded.status == "processed"
    assert uploaded.bytes == len(batch_input(25))
    assert client.files.retrieve(uploaded.id).filename == "input.jsonl"
    assert client.files.content(uploaded.id).read() == batch_input(25)

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "sdk"},
    )
    assert batch.status == "validating" and batch.id.startswith("batch_")
    done = wait(client, batch.id, {"completed", "failed", "expired", "cancelled"})
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (25, 25, 0)
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    assert done.metadata == {"job": "sdk"}
    assert done.error_file_id is None and done.output_file_id
    lines = [json.loads(l) for l in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(l["custom_id"] for l in lines) == sorted(f"req-{i}" for i in range(25))
    assert all(l["response"]["status_code"] == 200 and l["error"] is None for l in lines)
    assert {l["response"]["body"]["service_tier"] for l in lines} == {"flex"}
    assert done.id in [b.id for b in client.batches.list(limit=5)]
    assert client.files.delete(uploaded.id).deleted


def test_cancel_keeps_what_finished(client):
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(batch_input(400))), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="1h")
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"} and cancelling.cancelling_at
    done = wait(client, batch.id, {"cancelled"})
    counts = done.request_counts
    assert counts.completed + counts.failed == counts.total
    ids = []
    for file_id in (done.output_file_id, done.error_file_id):
        if file_id:
            ids += [json.loads(l)["custom_id"] for l in client.files.content(file_id).text.splitlines()]
    assert len(ids) == len(set(ids)) == counts.total


def test_unknown_ids_are_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.batches.retrieve("batch_does_not_exist")
    assert "batch_does_not_exist" in e.value.message
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-doesnotexist", endpoint="/v1/chat/completions", completion_window="24h")


def test_validation_failures_carry_line_numbers(client):
    text = batch_input(2) + b"{this is not json\n" + batch_input(1) + batch_input(1, model="gpt-5")[:-1].replace(b"req-0", b"other") + b"\n"
    uploaded = client.files.create(file=("bad.jsonl", io.BytesIO(text)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    failed = wait(client, batch.id, {"failed", "completed"})
    assert failed.status == "failed" and failed.failed_at
    found = [(e.code, e.line) for e in failed.errors.data]
    assert found == [("invalid_json_line", 3), ("duplicate_custom_id", 4), ("model_mismatch", 5)], found
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("notes.txt", io.BytesIO(b"hello")), purpose="batch")
