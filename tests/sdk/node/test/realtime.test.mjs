// The Node SDK's Realtime client through flexgate. It always dials wss://, whatever the
// base URL says, so tests/sdk/run.sh starts a second gateway with TLS on its listener
// (FLEXGATE_TLS_URL) and a certificate made for the run, trusted through
// NODE_EXTRA_CA_CERTS.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

function tlsUrl() {
  const url = process.env.FLEXGATE_TLS_URL;
  if (!url) throw new Error('FLEXGATE_TLS_URL is not set: run this suite through tests/sdk/run.sh');
  return url;
}

/** The next event of `type`, or the session's first error. */
function next(rt, type) {
  return new Promise((resolve, reject) => {
    rt.on(type, resolve);
    rt.on('error', reject);
  });
}

/** The sum of `flexgate_requests_total` samples whose labels include every pair. */
function requests(metrics, labels) {
  return metrics
    .split('\n')
    .filter((l) => l.startsWith('flexgate_requests_total{'))
    .filter((l) => Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

test('the Realtime client talks to the simulator through flexgate over wss://', async () => {
  const client = new OpenAI({ apiKey: 'sk-sdk-suite', baseURL: `${tlsUrl()}/v1` });
  const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime' }, client);
  try {
    const created = await next(rt, 'session.created');
    assert.equal(created.session.model, 'gpt-realtime');
    rt.send({
      type: 'conversation.item.create',
      item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Say hello over TLS' }] },
    });
    rt.send({ type: 'response.create' });
    const done = await next(rt, 'response.done');
    assert.equal(done.response.status, 'completed');
    assert.ok(done.response.usage.output_tokens > 0, JSON.stringify(done.response.usage));
  } finally {
    rt.close();
  }
  // The turn was counted like any request, with endpoint `realtime` (fetch trusts the
  // same certificate).
  const metrics = await (await fetch(`${tlsUrl()}/metrics`)).text();
  assert.equal(requests(metrics, { endpoint: 'realtime', outcome: 'success' }), 1);
});
