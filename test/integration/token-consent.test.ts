/**
 * Consent for both providers through the real web routes and the simulator; forged / replayed / expired state; bad input.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId, statusQuery, syncScheduleId } from '../../src/messages.js';
import { mintState } from '../../src/tokens/oauth-state.js';
import { tenantConnection } from '../../src/workflows/index.js';
import { operatorAuth, uniqueName } from '../helpers/env.js';
import { tokenHarness, type TokenHarness } from '../helpers/token-harness.js';

let h: TokenHarness;
before(async () => {
  h = await tokenHarness();
});
after(async () => h?.close());

test('Sage Accounting consent: /connect → Sage → callback; connected with partitions, schedule, mirror, encrypted tokens', async () => {
  const tenantId = uniqueName('acme');
  const res = await h.consent(tenantId, 'sage-accounting');
  assert.equal(res.status, 200, res.body);
  assert.match(res.body, /Connected to Sage/);
  const st = await h.status(tenantId, 'sage-accounting');
  assert.equal(st.state, 'connected');
  assert.equal(st.reason, null);
  assert.equal(st.tokenVersion, 1);
  assert.equal(st.authorizationUrl, null);
  assert.ok(st.partitions.length >= 1, 'businesses listed as partitions');
  assert.equal(st.connection?.available, true);
  assert.ok(st.connection?.leadBusinessId);
  // Sage Accounting quirk: the callback carries `country`; it is kept for the next consent URL.
  assert.match(res.callbackUrl, /country=/);

  const id = connectionWorkflowId('sage-accounting', tenantId);
  const conn = await h.stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: id } as never);
  assert.equal(conn?.state, 'connected');
  assert.ok(conn?.accessTokenExpiresAt instanceof Date);
  assert.equal((conn?.partitions as unknown[]).length, st.partitions.length);

  const desc = await h.stack.client.schedule.getHandle(syncScheduleId('sage-accounting', tenantId)).describe();
  assert.equal(desc.state.paused, false);
  assert.equal(desc.action.type, 'startWorkflow');
  assert.equal(desc.action.type === 'startWorkflow' && desc.action.workflowType, 'syncCustomers');

  const tok = await h.stack.mongo.collection(COLLECTIONS.tokens).findOne({ _id: id } as never);
  assert.equal(tok?.version, 1);
  const issued = h.sim.admin.issuedTokens().tokens as unknown[];
  const raw = JSON.stringify(tok);
  for (const t of issued) assert.ok(!raw.includes(String(t)), 'token stored in plaintext');

  // search attributes
  const d = await h.stack.client.workflow.getHandle(id).describe();
  assert.deepEqual(d.searchAttributes.ConnectionState, ['connected']);
  assert.deepEqual(d.searchAttributes.TenantId, [tenantId]);
});

test('Sage 200 consent: sites become partitions (company id, site id beside it), selection honoured', async () => {
  const tenantId = uniqueName('s2');
  const res = await h.consent(tenantId, 'sage-200');
  assert.equal(res.status, 200, res.body);
  const st = await h.status(tenantId, 'sage-200');
  assert.equal(st.state, 'connected');
  assert.ok(st.partitions.length >= 1);
  for (const p of st.partitions) {
    assert.match(p.id, /^\d+$/, 'partition id = company_id as a string');
    assert.ok(p.siteId, 'site id kept beside it');
  }
  // Sage ID consent URL: audience + offline_access
  const url = new URL((await h.web.inject({ method: 'GET', url: `/connect?tenantId=${tenantId}x&provider=sage-200`, headers: operatorAuth })).headers.location as string);
  assert.equal(url.searchParams.get('scope'), 'openid profile email offline_access');
  assert.ok(url.searchParams.get('audience'));
  assert.ok(url.searchParams.get('state'));
});

test('forged, replayed and expired state → HTTP 400 and nothing changed', async () => {
  const tenantId = uniqueName('st');
  const wfId = connectionWorkflowId('sage-accounting', tenantId);
  const connect = await h.web.inject({ method: 'GET', url: `/connect?tenantId=${tenantId}&provider=sage-accounting`, headers: operatorAuth });
  const callbackUrl = await h.followConsent(String(connect.headers.location));
  const cb = new URL(callbackUrl);
  const code = cb.searchParams.get('code')!;
  const state = cb.searchParams.get('state')!;
  const handle = h.stack.client.workflow.getHandle(wfId);
  // Accepted updates and activities are what "changing something" leaves in history (workflow-task bookkeeping aside).
  const footprint = async () =>
    ((await handle.fetchHistory()).events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes || e.activityTaskScheduledEventAttributes).length;
  await h.waitForStatus(tenantId, 'sage-accounting', (s) => s.authorizationUrl !== null);
  await new Promise((r) => setTimeout(r, 500));
  const before = await footprint();

  // forged: valid format, wrong MAC
  const [a, b, c] = state.split('.');
  const forged = await h.callback(`http://x/oauth/callback?code=${encodeURIComponent(code)}&state=${a}.${b}.${c}.AAAAAAAAAAAAAAAAAAAAAA`);
  assert.equal(forged.status, 400);
  // expired: authentic but past its expiry
  const expired = mintState(h.stack.config, wfId, 1_000, Date.now() - 60_000);
  assert.equal((await h.callback(`http://x/oauth/callback?code=${encodeURIComponent(code)}&state=${expired.state}`)).status, 400);
  // authentic, unexpired, but never issued by this workflow (unknown nonce) → rejected by the validator
  const unknown = mintState(h.stack.config, wfId, 60_000);
  assert.equal((await h.callback(`http://x/oauth/callback?code=${encodeURIComponent(code)}&state=${unknown.state}`)).status, 400);
  assert.equal(await footprint(), before, 'validator rejections accept nothing and run nothing');
  assert.equal((await handle.query(statusQuery)).state, 'awaiting_authorization');

  // the real one works once...
  const ok = await h.callback(callbackUrl);
  assert.equal(ok.status, 200, ok.body);
  const v = (await handle.query(statusQuery)).tokenVersion;
  // ...and a replay is refused without touching anything
  const replay = await h.callback(callbackUrl);
  assert.equal(replay.status, 400);
  assert.equal((await handle.query(statusQuery)).tokenVersion, v);
});

test('denied consent (access_denied) is shown with Sage\'s reason and recorded as consent_denied', async () => {
  const tenantId = uniqueName('deny');
  h.sim.admin.nextConsent({ provider: 'sage-accounting', deny: 'access_denied', denyDescription: 'The user denied access' });
  const res = await h.consent(tenantId, 'sage-accounting');
  assert.equal(res.status, 422);
  assert.match(res.body, /access_denied/);
  const st = await h.waitForStatus(tenantId, 'sage-accounting', (s) => s.reason === 'consent_denied');
  assert.equal(st.state, 'awaiting_authorization');
  assert.ok(st.authorizationUrl, 'a fresh consent URL is offered');
});

test('bad input and a non-canonical workflow id fail the workflow at once with a message naming the problem', async () => {
  const bad = h.stack.client.workflow.execute(tenantConnection, {
    workflowId: connectionWorkflowId('sage-accounting', 'bad'),
    taskQueue: h.stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId: 'bad', provider: 'sage-accounting', sync: { intervalMinutes: 0 } }],
  });
  await assert.rejects(bad, (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'InvalidInput');
    assert.match(err.cause.message, /sync\.intervalMinutes/);
    return true;
  });
  const wrongId = h.stack.client.workflow.execute(tenantConnection, {
    workflowId: uniqueName('not-canonical'),
    taskQueue: h.stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId: 'acme', provider: 'sage-200' }],
  });
  await assert.rejects(wrongId, (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'InvalidInput');
    assert.match(err.cause.message, /sage-connection:sage-200:acme/);
    return true;
  });
});
