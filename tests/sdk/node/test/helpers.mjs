// Shared helpers for the Node SDK suite. tests/sdk/run.sh exports FLEXGATE_URL and
// SIM_URL; the sim's request log tells how many upstream attempts one SDK call caused,
// found by a unique x-request-id that flexgate keeps and forwards.
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';

export const LANES = [
  { lane: '/v1', klass: 'interactive', tier: 'standard', serviceTier: 'default' },
  { lane: '/flex/v1', klass: 'background', tier: 'flex', serviceTier: 'flex' },
];

export const MESSAGES = [{ role: 'user', content: 'Say hello to the gateway' }];

export function gatewayUrl() {
  const url = process.env.FLEXGATE_URL;
  if (!url) throw new Error('FLEXGATE_URL is not set: run this suite through tests/sdk/run.sh');
  return url;
}

/** An SDK client for one lane; maxRetries 2 is the SDK default, spelled out. */
export function client(lane, options = {}) {
  return new OpenAI({ apiKey: 'sk-sdk-suite', baseURL: gatewayUrl() + lane, maxRetries: 2, ...options });
}

export function newId() {
  return `sdk-node-${randomUUID()}`;
}

export function fault(requestId, script) {
  return { 'x-request-id': requestId, 'x-sim-fault': script };
}

/** What the sim received for one client request id, in arrival order. */
export async function simRequests(requestId) {
  const r = await fetch(`${process.env.SIM_URL}/_sim/requests`);
  const log = await r.json();
  return log.filter((e) => e.request_id === requestId);
}
