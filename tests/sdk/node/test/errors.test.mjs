// Errors surface as the Node SDK's own classes; the SDK does not retry what flexgate
// already gave up on; a stream cut mid-way rejects instead of ending quietly.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';
import { LANES, MESSAGES, client, fault, newId, simRequests } from './helpers.mjs';

for (const { lane } of LANES) {
  describe(`errors on ${lane}`, () => {
    test('404 NotFoundError with code and param intact', async () => {
      await assert.rejects(
        client(lane).chat.completions.create({ model: 'gpt-no-such-model', messages: MESSAGES }),
        (e) => {
          assert.ok(e instanceof OpenAI.NotFoundError, `got ${e?.constructor?.name}`);
          assert.equal(e.status, 404);
          assert.equal(e.code, 'model_not_found');
          assert.equal(e.param, 'model');
          assert.equal(e.type, 'invalid_request_error');
          assert.match(e.message, /gpt-no-such-model/);
          return true;
        },
      );
    });

    test('billing 429 is a RateLimitError, sent upstream exactly once', async () => {
      const rid = newId();
      await assert.rejects(
        client(lane, { maxRetries: 2 }).chat.completions.create(
          { model: 'gpt-5-mini', messages: MESSAGES },
          { headers: fault(rid, '429-quota') },
        ),
        (e) => {
          assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}`);
          assert.equal(e.code, 'insufficient_quota');
          assert.equal(e.headers.get('x-should-retry'), 'false');
          return true;
        },
      );
      assert.equal((await simRequests(rid)).length, 1);
    });

    test('a chat stream cut mid-way rejects', async () => {
      const stream = await client(lane).chat.completions.create(
        { model: 'gpt-5-mini', messages: MESSAGES, stream: true, max_tokens: 200 },
        { headers: fault(newId(), 'cut') },
      );
      let chunks = 0;
      await assert.rejects(async () => {
        for await (const _ of stream) chunks += 1;
      }, OpenAI.APIError);
      assert.ok(chunks > 0, 'some chunks arrived before the cut');
    });

    test('a Responses stream cut mid-way rejects', async () => {
      const stream = await client(lane).responses.create(
        { model: 'gpt-5-mini', input: 'Tell me a long story', stream: true },
        { headers: fault(newId(), 'cut') },
      );
      const kinds = [];
      await assert.rejects(async () => {
        for await (const e of stream) kinds.push(e.type);
      }, OpenAI.APIError);
      assert.ok(!kinds.includes('response.completed'));
    });
  });
}
