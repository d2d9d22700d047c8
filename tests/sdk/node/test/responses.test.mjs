// The Responses API through both lanes with the official Node SDK.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LANES, client } from './helpers.mjs';

for (const { lane, serviceTier } of LANES) {
  describe(`responses on ${lane}`, () => {
    test('non-streaming', async () => {
      const r = await client(lane).responses.create({ model: 'gpt-5-mini', input: 'One sentence about flex.' });
      assert.equal(r.status, 'completed');
      assert.ok(r.output_text);
      assert.equal(r.service_tier, serviceTier);
      assert.ok(r.usage.output_tokens > 0);
    });

    test('streaming', async () => {
      const stream = await client(lane).responses.create({ model: 'gpt-5-mini', input: 'Stream a sentence.', stream: true });
      const events = [];
      for await (const event of stream) events.push(event);
      assert.equal(events[0].type, 'response.created');
      const last = events.at(-1);
      assert.equal(last.type, 'response.completed');
      const deltas = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
      assert.ok(deltas.length > 0);
      assert.equal(last.response.service_tier, serviceTier);
      assert.ok(last.response.usage.output_tokens > 0);
    });
  });
}
