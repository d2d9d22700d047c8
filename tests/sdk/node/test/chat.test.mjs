// Chat Completions through both lanes with the official Node SDK.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LANES, MESSAGES, client } from './helpers.mjs';

for (const { lane, klass, tier, serviceTier } of LANES) {
  describe(`chat completions on ${lane}`, () => {
    test('non-streaming, with flexgate headers on the raw response', async () => {
      const { data, response } = await client(lane)
        .chat.completions.create({ model: 'gpt-5-mini', messages: MESSAGES })
        .withResponse();
      assert.equal(data.object, 'chat.completion');
      assert.ok(data.choices[0].message.content);
      assert.equal(data.service_tier, serviceTier);
      assert.ok(data.usage.completion_tokens > 0);
      assert.equal(response.headers.get('x-flexgate-class'), klass);
      assert.equal(response.headers.get('x-flexgate-tier'), tier);
      assert.ok(Number(response.headers.get('x-flexgate-cost-usd')) > 0);
    });

    test('streaming without usage', async () => {
      const stream = await client(lane).chat.completions.create({ model: 'gpt-5-mini', messages: MESSAGES, stream: true });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length > 0);
      assert.ok(chunks.every((c) => c.choices.length > 0 && !c.usage), 'no usage chunk leaks to the client');
      assert.ok(chunks.map((c) => c.choices[0].delta.content ?? '').join(''));
      assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
      assert.equal(chunks.at(-1).service_tier, serviceTier);
    });

    test('streaming with include_usage', async () => {
      const stream = await client(lane).chat.completions.create({
        model: 'gpt-5-mini',
        messages: MESSAGES,
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      const last = chunks.at(-1);
      assert.deepEqual(last.choices, []);
      assert.ok(last.usage.completion_tokens > 0);
    });
  });
}
