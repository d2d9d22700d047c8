// The Node SDK's own timeout bounds flexgate's deadline: a flex request that flex
// would answer too late escalates to standard before the SDK gives up.
//
// openai 7.55.0 announces its timeout (X-Stainless-Timeout, whole seconds) only when
// the timeout is given per request; a client-wide `new OpenAI({ timeout })` sends no
// such header, so flexgate falls back to the class deadline. Hence the per-request
// option below, the way OpenAI's flex guide sets the 15-minute timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MESSAGES, client, fault, newId, simRequests } from './helpers.mjs';

test('flex escalates within a per-request SDK timeout', async () => {
  const rid = newId();
  const started = performance.now();
  const { data, response } = await client('/flex/v1', { maxRetries: 0 })
    .chat.completions.create(
      { model: 'gpt-5-mini', messages: MESSAGES },
      { timeout: 10_000, headers: fault(rid, 'flex:slow:30s') },
    )
    .withResponse();
  const seconds = (performance.now() - started) / 1000;
  assert.ok(seconds >= 2 && seconds < 8, `took ${seconds.toFixed(1)}s`);
  assert.equal(response.headers.get('x-flexgate-escalated'), 'true');
  assert.equal(response.headers.get('x-flexgate-attempts'), '2');
  assert.equal(data.service_tier, 'default');
  const sent = Object.fromEntries((await simRequests(rid))[0].headers);
  assert.equal(sent['x-stainless-timeout'], '10');
});

test('a slow flex request under a 15-minute per-request timeout stays on flex', async () => {
  const rid = newId();
  const { data, response } = await client('/flex/v1')
    .chat.completions.create(
      { model: 'gpt-5-mini', messages: MESSAGES },
      { timeout: 900_000, headers: fault(rid, 'flex:slow:2s') },
    )
    .withResponse();
  assert.equal(response.headers.get('x-flexgate-tier'), 'flex');
  assert.equal(response.headers.get('x-flexgate-escalated'), 'false');
  assert.equal(data.service_tier, 'flex');
});
