/**
 * What a `tenantConnection` history holds is encrypted by the payload codec (src/temporal/): the start input, update
 * arguments and results, signal arguments, activity inputs and results, and the workflow's result. Only search
 * attributes (contract §3, indexed by the server) are plaintext by design, so they are not searched here; the SDK's
 * patch markers (a patch name) are below the codec and are searched for the tenant id but not required encrypted.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Payload } from '@temporalio/common';
import { beginAuthorizationUpdate, disconnectSignal, statusQuery } from '../../src/messages.js';
import { connectionWorkflowId } from '../../src/connection/ids.js';
import { tenantConnection } from '../../src/workflows/index.js';
import { testStack, uniqueName, type TestStack } from '../helpers/env.js';

let stack: TestStack;
before(async () => {
  // Consent links need a client id; nothing here calls Sage.
  stack = await testStack({
    SAGE_ACCOUNTING_CLIENT_ID: 'enc-test-client',
    SAGE_ACCOUNTING_CLIENT_SECRET: 'enc-test-secret',
  });
  await stack.startWorker();
});
after(async () => stack?.close());

/** Every payload object in a raw (still encoded) history. */
function rawPayloads(history: unknown): { path: string; payload: Payload }[] {
  const found: { path: string; payload: Payload }[] = [];
  const walk = (v: unknown, path: string) => {
    if (!v || typeof v !== 'object' || v instanceof Uint8Array) return;
    const o = v as Record<string, unknown>;
    if (o.metadata && typeof o.metadata === 'object' && o.data instanceof Uint8Array) {
      found.push({ path, payload: o as Payload });
      return;
    }
    for (const [k, x] of Object.entries(o)) if (k !== 'searchAttributes') walk(x, `${path}.${k}`);
  };
  walk(history, 'history');
  return found;
}

test('a tenantConnection history is readable and every payload in it is encrypted (no plaintext tenant id)', async () => {
  const tenantId = uniqueName('enc');
  const workflowId = connectionWorkflowId('sage-accounting', tenantId);
  const handle = await stack.client.workflow.start(tenantConnection, {
    workflowId,
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId, provider: 'sage-accounting' }],
  });
  // An update (argument + result), a query, then a signal and the workflow's result: every payload kind.
  const link = await handle.executeUpdate(beginAuthorizationUpdate, { args: [{ country: 'GB' }] });
  assert.match(link.authorizationUrl, /^https?:\/\//);
  assert.equal((await handle.query(statusQuery)).tenantId, tenantId, 'the codec decodes what it encoded');
  await handle.signal(disconnectSignal, { revoke: false });
  await handle.result();

  const history = await handle.fetchHistory();
  const types = new Set((history.events ?? []).map((e) => e.eventType));
  assert.ok(types.size >= 5, `a full history (${[...types].length} event types)`);
  const payloads = rawPayloads(history);
  assert.ok(payloads.length >= 4, `the history has payloads (${payloads.length})`);
  for (const { path, payload } of payloads) {
    // Patch markers are written by the SDK below the codec: they hold only the patch name (still searched below).
    if (!path.includes('.patch-data.'))
      assert.equal(
        Buffer.from(payload.metadata?.encoding ?? []).toString(),
        'binary/encrypted',
        `${path} is encrypted`,
      );
    const raw = Buffer.from(payload.data ?? []).toString('latin1');
    assert.ok(!raw.includes(tenantId), `${path} holds no plaintext tenant id`);
    assert.ok(!raw.includes('state='), `${path} holds no plaintext consent URL`);
  }
});
