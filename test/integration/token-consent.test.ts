/**
 * Consent for both providers through the real web routes and the simulator; forged / replayed / expired state; bad input.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { scheduleOffsetSeconds } from '../../src/activities/schedule.js';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId, disconnectSignal, statusQuery, syncScheduleId } from '../../src/messages.js';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { readConsentDoc } from '../../src/tokens/consent-store.js';
import { mintState } from '../../src/tokens/oauth-state.js';
import { tenantConnection } from '../../src/workflows/index.js';
import { operatorAuth, uniqueName } from '../helpers/env.js';
import { tokenHarness, webhookReceiver, type TokenHarness } from '../helpers/token-harness.js';

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
  // Each tenant fires at its own second of the interval, not all at `epoch + n × every`.
  const interval = desc.spec.intervals?.[0];
  assert.ok(interval, 'an interval spec');
  const every = Number(interval.every) / 1000;
  assert.equal(
    Number(interval.offset ?? 0) / 1000,
    scheduleOffsetSeconds(syncScheduleId('sage-accounting', tenantId), every / 60),
  );
  // ...and its regular runs begin minutes after the immediate first one (an hourly tenant: 5 minutes).
  assert.ok(desc.spec.startAt && desc.spec.startAt.getTime() > Date.now() + 4 * 60_000, 'spec.startAt minutes ahead');

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
  const url = new URL(
    (
      await h.web.inject({
        method: 'GET',
        url: `/connect?tenantId=${tenantId}x&provider=sage-200`,
        headers: operatorAuth,
      })
    ).headers.location as string,
  );
  assert.equal(url.searchParams.get('scope'), 'openid profile email offline_access');
  assert.ok(url.searchParams.get('audience'));
  assert.ok(url.searchParams.get('state'));
});

test('forged, replayed and expired state → HTTP 400 and nothing changed', async () => {
  const tenantId = uniqueName('st');
  const wfId = connectionWorkflowId('sage-accounting', tenantId);
  const connect = await h.web.inject({
    method: 'GET',
    url: `/connect?tenantId=${tenantId}&provider=sage-accounting`,
    headers: operatorAuth,
  });
  const callbackUrl = await h.followConsent(String(connect.headers.location));
  const cb = new URL(callbackUrl);
  const code = cb.searchParams.get('code')!;
  const state = cb.searchParams.get('state')!;
  const handle = h.stack.client.workflow.getHandle(wfId);
  // Accepted updates and activities are what "changing something" leaves in history (workflow-task bookkeeping aside).
  const footprint = async () =>
    ((await handle.fetchHistory()).events ?? []).filter(
      (e) => e.workflowExecutionUpdateAcceptedEventAttributes || e.activityTaskScheduledEventAttributes,
    ).length;
  await h.waitForStatus(tenantId, 'sage-accounting', (s) => s.authorizationUrl !== null);
  await new Promise((r) => setTimeout(r, 500));
  const before = await footprint();

  // forged: valid format, wrong MAC
  const [a, b, c] = state.split('.');
  const forged = await h.callback(
    `http://x/oauth/callback?code=${encodeURIComponent(code)}&state=${a}.${b}.${c}.AAAAAAAAAAAAAAAAAAAAAA`,
  );
  assert.equal(forged.status, 400);
  // expired: authentic but past its expiry
  const expired = mintState(h.stack.config, wfId, 1_000, Date.now() - 60_000);
  assert.equal(
    (await h.callback(`http://x/oauth/callback?code=${encodeURIComponent(code)}&state=${expired.state}`)).status,
    400,
  );
  // authentic, unexpired, but never issued by this workflow (unknown nonce) → rejected by the validator
  const unknown = mintState(h.stack.config, wfId, 60_000);
  assert.equal(
    (await h.callback(`http://x/oauth/callback?code=${encodeURIComponent(code)}&state=${unknown.state}`)).status,
    400,
  );
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

test("denied consent (access_denied) is shown with Sage's reason and recorded as consent_denied", async () => {
  const tenantId = uniqueName('deny');
  h.sim.admin.nextConsent({
    provider: 'sage-accounting',
    deny: 'access_denied',
    denyDescription: 'The user denied access',
  });
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

// --- issue 12 -----------------------------------------------------------------------------------------------------

/** A Sage user of the simulator, and a consent of `tenantId` by that user through the real routes. */
function sageUser() {
  return h.sim.admin.createUser({ provider: 'sage-accounting' });
}
async function consentAs(tenantId: string, userId: string) {
  h.sim.admin.nextConsent({ provider: 'sage-accounting', userId });
  return h.consent(tenantId, 'sage-accounting');
}

test('re-consent whose new grant reaches none of the partitions: refused (4xx naming the reason), revoked at Sage, previous grant, tokens and partitions kept', async () => {
  const tenantId = uniqueName('takeover');
  const id = connectionWorkflowId('sage-accounting', tenantId);
  const owner = sageUser();
  assert.equal((await consentAs(tenantId, owner.id)).status, 200);
  const before = await h.status(tenantId, 'sage-accounting');
  assert.equal(before.sageUserId, owner.uuid, 'the granting Sage user is recorded');

  // Someone else consents with their own Sage account (their own businesses only).
  const intruder = sageUser();
  const res = await consentAs(tenantId, intruder.id);
  assert.equal(res.status, 403, res.body);
  assert.match(res.body, /reconsent_no_partitions/);

  const st = await h.status(tenantId, 'sage-accounting');
  assert.equal(st.state, 'connected');
  assert.equal(st.tokenVersion, before.tokenVersion, 'the new tokens never became the current version');
  assert.deepEqual(st.partitions, before.partitions);
  assert.equal(st.sageUserId, owner.uuid);
  assert.equal(st.lastReconsent?.outcome, 'refused');
  assert.equal(st.lastReconsent?.reason, 'reconsent_no_partitions');
  assert.equal(st.lastReconsent?.userChanged, true);
  assert.equal(st.lastReconsent?.sageUserId, intruder.uuid);
  assert.deepEqual(
    [...(st.lastReconsent?.unreachablePartitions ?? [])].sort(),
    before.partitions.map((p) => p.id).sort(),
  );

  // Revoked at Sage: the intruder's grant is dead, the owner's is live.
  const intruderGrants = h.sim.admin.grants('sage-accounting', intruder.id).grants;
  assert.equal(intruderGrants.length, 1);
  assert.equal(intruderGrants[0]!.revoked, true, 'the refused grant is revoked at Sage');
  assert.ok(h.sim.admin.grants('sage-accounting', owner.id).grants.every((g) => !g.revoked));
  const tok = await readConsentDoc(h.stack.mongo, id);
  assert.equal(tok?.version, before.tokenVersion);
  assert.equal(tok?.consentCandidate ?? null, null, 'the staged grant is dropped');
  const conn = await h.stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: id } as never);
  assert.equal(conn?.lastReconsent?.outcome, 'refused');
  assert.equal(conn?.lastReconsent?.userChanged, true);
  assert.equal(conn?.state, 'connected');

  // The previous grant keeps working: a refresh rotates it.
  const lease = await acquireAccessToken(
    { client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config },
    { tenantId, provider: 'sage-accounting' },
    { rejectedTokenVersion: before.tokenVersion! },
  );
  assert.equal(lease.tokenVersion, before.tokenVersion! + 1);
});

test('re-consent reaching only some partitions is accepted and reports the others; a different Sage user is recorded in status and connections', async () => {
  const tenantId = uniqueName('partial');
  const id = connectionWorkflowId('sage-accounting', tenantId);
  const owner = sageUser();
  assert.equal((await consentAs(tenantId, owner.id)).status, 200);
  const before = await h.status(tenantId, 'sage-accounting');
  assert.ok(before.partitions.length >= 2);
  // A colleague invited to the first business only (simulator state edited in-process: an invited user).
  const colleague = sageUser();
  const shared = before.partitions[0]!.id;
  h.sim.state.user(colleague.id).partitionIds.push(shared);
  const res = await consentAs(tenantId, colleague.id);
  assert.equal(res.status, 200, res.body);

  const st = await h.status(tenantId, 'sage-accounting');
  assert.equal(st.state, 'connected');
  assert.equal(st.tokenVersion, before.tokenVersion! + 1);
  assert.equal(st.reason, 'partition_not_found');
  const others = before.partitions.slice(1).map((p) => p.id);
  for (const p of others) assert.ok(st.lastError?.includes(p), `unreachable ${p} reported: ${st.lastError}`);
  assert.ok(st.partitions.some((p) => p.id === shared));
  assert.equal(st.sageUserId, colleague.uuid);
  assert.deepEqual(st.lastReconsent && { ...st.lastReconsent, at: 'x' }, {
    at: 'x',
    outcome: 'accepted',
    reason: 'partition_not_found',
    previousSageUserId: owner.uuid,
    sageUserId: colleague.uuid,
    userChanged: true,
    unreachablePartitions: others,
  });
  const conn = await h.stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: id } as never);
  assert.equal(conn?.sageUserId, colleague.uuid);
  assert.equal(conn?.lastReconsent?.userChanged, true);
  assert.deepEqual(conn?.lastReconsent?.unreachablePartitions, others);
});

test('Temporal UI: current details show state, reason and, while awaiting consent, the consent link; updated on connect', async () => {
  const tenantId = uniqueName('ui');
  const id = await h.start({ tenantId, provider: 'sage-accounting' });
  const handle = h.stack.client.workflow.getHandle(id);
  const awaiting = await h.waitForStatus(tenantId, 'sage-accounting', (s) => s.authorizationUrl !== null);
  const meta = async () =>
    (await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata')).currentDetails ?? '';
  const d1 = await meta();
  assert.match(d1, /awaiting_authorization/);
  assert.match(d1, /awaiting_consent/);
  assert.ok(d1.includes(awaiting.authorizationUrl!), 'the consent link is in the details');
  assert.equal((await h.callback(await h.followConsent(awaiting.authorizationUrl!))).status, 200);
  const d2 = await meta();
  assert.match(d2, /`connected`/);
  assert.ok(!d2.includes(awaiting.authorizationUrl!), 'no stale link once connected');
});

// Before the fix the workflow task failed forever (the run never ended): the timeout turns that into a failure.
test(
  'carried state is input too: a malformed __carried fails the workflow at once with InvalidInput naming it',
  { timeout: 60_000 },
  async (t) => {
    const tenantId = uniqueName('carried');
    t.after(() =>
      h.stack.client.workflow
        .getHandle(connectionWorkflowId('sage-accounting', tenantId))
        .terminate('test over')
        .catch(() => {}),
    );
    const run = h.stack.client.workflow.execute(tenantConnection, {
      workflowId: connectionWorkflowId('sage-accounting', tenantId),
      taskQueue: h.stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ tenantId, provider: 'sage-accounting', __carried: {} } as never],
      workflowTaskTimeout: '5s',
    });
    await assert.rejects(run, (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure);
      assert.equal(err.cause.type, 'InvalidInput');
      assert.match(err.cause.message, /__carried/);
      return true;
    });
  },
);

test('event ids are never reused: the first reauthorization alert after disconnect + restart under the same id gets a new id', async () => {
  const hook = await webhookReceiver();
  try {
    const tenantId = uniqueName('evid');
    const id = connectionWorkflowId('sage-accounting', tenantId);
    const deps = { client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config };
    const alerts = () =>
      hook.received
        .map((r) => JSON.parse(r.body) as { id: string; type: string; workflowId: string })
        .filter((e) => e.workflowId === id && e.type === 'connection.reauthorization_required');
    async function connectThenLoseGrant(): Promise<void> {
      const owner = sageUser();
      await h.start({ tenantId, provider: 'sage-accounting', notifyWebhookUrl: hook.url });
      assert.equal((await consentAs(tenantId, owner.id)).status, 200);
      const n = alerts().length;
      h.sim.admin.revoke({ provider: 'sage-accounting', userId: owner.id });
      const v = (await h.status(tenantId, 'sage-accounting')).tokenVersion!;
      await acquireAccessToken(deps, { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: v }).catch(
        () => {},
      );
      const deadline = Date.now() + 60_000;
      while (alerts().length === n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      assert.equal(alerts().length, n + 1, 'one reauthorization alert');
    }
    await connectThenLoseGrant();
    const handle = h.stack.client.workflow.getHandle(id);
    await handle.signal(disconnectSignal, { revoke: false });
    await handle.result();
    await connectThenLoseGrant(); // a closed connection started again under the same workflow id
    const [first, second] = alerts();
    assert.ok(first && second);
    assert.notEqual(second.id, first.id, 'a receiver deduplicating by id would drop the second alert');
    assert.equal(
      new Set(hook.received.map((r) => r.headers['x-sage-sync-event-id'])).size,
      hook.received.length,
      'no id delivered twice',
    );
  } finally {
    await hook.close();
  }
});

test('Sage 200: a re-consent by a Sage ID user who reaches none of the sites is refused and revoked; sites and tokens kept', async () => {
  const tenantId = uniqueName('s2take');
  const owner = h.sim.admin.createUser({ provider: 'sage-200' });
  h.sim.admin.nextConsent({ provider: 'sage-200', userId: owner.id });
  assert.equal((await h.consent(tenantId, 'sage-200')).status, 200);
  const before = await h.status(tenantId, 'sage-200');
  const intruder = h.sim.admin.createUser({ provider: 'sage-200' });
  h.sim.admin.nextConsent({ provider: 'sage-200', userId: intruder.id });
  const res = await h.consent(tenantId, 'sage-200');
  assert.equal(res.status, 403, res.body);
  assert.match(res.body, /reconsent_no_partitions/);
  const st = await h.status(tenantId, 'sage-200');
  assert.equal(st.state, 'connected');
  assert.equal(st.tokenVersion, before.tokenVersion);
  assert.deepEqual(st.partitions, before.partitions);
  assert.equal(st.lastReconsent?.outcome, 'refused');
  assert.ok(
    h.sim.admin.grants('sage-200', intruder.id).grants.every((g) => g.revoked),
    'the refused Sage ID grant is revoked',
  );
  assert.ok(h.sim.admin.grants('sage-200', owner.id).grants.every((g) => !g.revoked));
});
