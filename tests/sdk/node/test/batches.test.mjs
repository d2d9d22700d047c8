// The Node SDK against flexgate's own Files and Batches API under the background lane:
// upload a JSONL file (multipart, via toFile), create a batch, poll it to completion,
// and read the output file's lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';

import { client } from './helpers.mjs';

function batchInput(n) {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `node-${i}`,
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'gpt-5-mini', messages: [{ role: 'user', content: `line ${i}` }] },
    }),
  ).join('\n') + '\n';
}

test('upload, create, poll and download a batch', async () => {
  const openai = client('/flex/v1');
  const file = await openai.files.create({
    file: await toFile(Buffer.from(batchInput(12)), 'input.jsonl'),
    purpose: 'batch',
  });
  assert.match(file.id, /^file-/);
  assert.equal(file.purpose, 'batch');
  const created = await openai.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
  });
  assert.equal(created.status, 'validating');
  let batch = created;
  const deadline = Date.now() + 60_000;
  while (!['completed', 'failed', 'expired', 'cancelled'].includes(batch.status)) {
    assert.ok(Date.now() < deadline, `batch stuck in ${batch.status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    batch = await openai.batches.retrieve(created.id);
  }
  assert.equal(batch.status, 'completed');
  assert.deepEqual(batch.request_counts, { total: 12, completed: 12, failed: 0 });
  const text = await (await openai.files.content(batch.output_file_id)).text();
  const ids = text.trim().split('\n').map((line) => JSON.parse(line).custom_id).sort();
  assert.deepEqual(ids, Array.from({ length: 12 }, (_, i) => `node-${i}`).sort());
});
