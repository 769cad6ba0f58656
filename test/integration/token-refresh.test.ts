/**
 * The token lifecycle against the simulator over HTTP, a real worker, Temporal and FerretDB: refresh storms, rejected
 * versions, a revoked grant, re-consent, continue-as-new, disconnect, and a plaintext-token scan.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ReauthorizationRequiredError } from '../../src/errors.js';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import {
  connectionWorkflowId,
  disconnectSignal,
  syncReportSignal,
  syncScheduleId,
  type ConnectionStatus,
  type Provider,
} from '../../src/messages.js';
import { defaultPayloadConverter } from '@temporalio/common';
import type { FaultRuleInput } from '../../src/simulator/faults.js';
import { EncryptionCodec } from '../../src/temporal/codec.js';
import { codecKeyRingFromConfig, keyRingFromConfig } from '../../src/lib/crypto.js';
import { acquireAccessToken, TokenUnavailableError } from '../../src/tokens/access.js';
import { verifySignature } from '../../src/tokens/notify.js';
import { openTokens, readTokenDoc } from '../../src/tokens/store.js';
import { registry } from '../../src/lib/metrics.js';
import { uniqueName } from '../helpers/env.js';
import { succeededSummary } from '../helpers/summaries.js';
import { tokenHarness, webhookReceiver, type TokenHarness } from '../helpers/token-harness.js';
import { eventually } from '../helpers/wait.js';

const SECRET = 'webhook-test-secret';
let h: TokenHarness;
let hook: Awaited<ReturnType<typeof webhookReceiver>>;
const workflowIds: string[] = [];

before(async () => {
  hook = await webhookReceiver({ failFirst: 1 });
  h = await tokenHarness({ env: { NOTIFY_WEBHOOK_URL: hook.url, NOTIFY_WEBHOOK_SECRET: SECRET } });
});
after(async () => {
  await h?.close();
  await hook?.close();
});

const deps = () => ({ client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config });

/** While Sage's token endpoint answers `fault`, a forced refresh (v1 rejected) is refused as transient; cleared after. */
async function forcedRefreshRefusedUnder(tenantId: string, fault: FaultRuleInput): Promise<void> {
  h.sim.admin.addFaults(fault);
  try {
    await assert.rejects(
      acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: 1 }),
      TokenUnavailableError,
    );
  } finally {
    h.sim.admin.clearFaults();
  }
}
const refreshes = (p: Provider) => h.sim.admin.counters().byProvider[p].refreshes;

async function connect(provider: Provider, prefix: string): Promise<string> {
  const tenantId = uniqueName(prefix);
  const res = await h.consent(tenantId, provider);
  assert.equal(res.status, 200, res.body);
  workflowIds.push(connectionWorkflowId(provider, tenantId));
  return tenantId;
}

/** The schedule's first sync starts right after consent; waits until it has reported every business. */
async function waitForFirstSync(tenantId: string): Promise<ConnectionStatus> {
  return h.waitForStatus(
    tenantId,
    'sage-accounting',
    (s) => s.partitions.length > 0 && s.partitions.every((p) => s.lastSync[p.id]?.status === 'succeeded'),
    90_000,
  );
}

/** A counter's value in this process's registry (the test worker runs in-process, so its activities count here). */
async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value ?? 0;
}

test('200 concurrent getAccessToken calls on an expiring token cause exactly ONE refresh at Sage', async () => {
  const tenantId = await connect('sage-accounting', 'storm');
  // The schedule's first sync starts at consent and asks for tokens too: let it finish, so the storm is the only caller.
  await waitForFirstSync(tenantId);
  // A 4-second token, so it is soon inside its refresh margin (a quarter of its life: 1 s)...
  h.sim.admin.settings({ sageAccounting: { accessTokenTtlSeconds: 4 } });
  const current = (await h.status(tenantId, 'sage-accounting')).tokenVersion!;
  await acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: current });
  // ...and 5-minute tokens afterwards, so the refreshed one outlives the storm.
  h.sim.admin.settings({ sageAccounting: { accessTokenTtlSeconds: 300 } });
  // 3.3 s later at most 0.7 s is left: inside the margin (or expired), so the storm needs exactly one refresh.
  await new Promise((r) => setTimeout(r, 3_300));
  const before = refreshes('sage-accounting');
  const expected = current + 2;
  const metricBefore = await metricValue('sage_sync_token_refreshes_total', {
    provider: 'sage-accounting',
    outcome: 'refreshed',
  });
  const started = Date.now();
  const results = await Promise.all(
    Array.from({ length: 200 }, () => acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' })),
  );
  console.log(`storm: 200 getAccessToken calls answered in ${Date.now() - started} ms`);
  const after = refreshes('sage-accounting');
  console.log(`storm: 200 callers → ${after - before} refresh(es) at the simulator`);
  assert.equal(after - before, 1);
  assert.equal(
    (await metricValue('sage_sync_token_refreshes_total', { provider: 'sage-accounting', outcome: 'refreshed' })) -
      metricBefore,
    1,
    'the refresh is counted once in the worker metrics',
  );
  assert.deepEqual(new Set(results.map((r) => r.tokenVersion)), new Set([expected]));
  assert.equal(new Set(results.map((r) => r.accessToken)).size, 1);
  const st = await h.status(tenantId, 'sage-accounting');
  assert.equal(st.tokenVersion, expected);
  // A fresh 300 s token is handed out without refreshing again (margin 75 s, not "refresh on every call").
  await acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' });
  assert.equal(refreshes('sage-accounting'), after);
  // The token works at Sage.
  const api = await fetch(`${h.sim.url}/sage-accounting/v3.1/businesses`, {
    headers: { authorization: `Bearer ${results[0]!.accessToken}` },
  });
  assert.equal(api.status, 200);
});

test('rejectedTokenVersion: a stale version gets the current token, the current one forces exactly one refresh', async () => {
  const tenantId = await connect('sage-accounting', 'rej');
  const first = await acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' });
  assert.equal(first.tokenVersion, 1);
  const before = refreshes('sage-accounting');
  // 20 callers all report version 1 as rejected (401): one refresh, everyone gets version 2.
  const forced = await Promise.all(
    Array.from({ length: 20 }, () =>
      acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: 1 }),
    ),
  );
  assert.equal(refreshes('sage-accounting') - before, 1);
  assert.ok(forced.every((r) => r.tokenVersion === 2));
  // A late caller still holding version 1: stale, no refresh.
  const stale = await acquireAccessToken(
    deps(),
    { tenantId, provider: 'sage-accounting' },
    { rejectedTokenVersion: 1 },
  );
  assert.equal(stale.tokenVersion, 2);
  assert.equal(refreshes('sage-accounting') - before, 1);
  // Sage 200 path works the same way.
  const t2 = await connect('sage-200', 'rej200');
  const b2 = refreshes('sage-200');
  const r2 = await acquireAccessToken(deps(), { tenantId: t2, provider: 'sage-200' }, { rejectedTokenVersion: 1 });
  assert.equal(r2.tokenVersion, 2);
  assert.equal(refreshes('sage-200') - b2, 1);
});

test('revoked grant → reauthorization_required after exactly one invalid_grant; signed webhook; re-consent recovers the same workflow', async () => {
  const tenantId = await connect('sage-accounting', 'revoked');
  const id = connectionWorkflowId('sage-accounting', tenantId);
  const handle = h.stack.client.workflow.getHandle(id);
  const { runId } = await handle.describe();
  // The schedule's first sync starts right after consent: let it report every business, then record a known summary.
  await waitForFirstSync(tenantId);
  const reported = (await h.status(tenantId, 'sage-accounting')).partitions[0]!.id;
  await handle.signal(syncReportSignal, {
    partitionId: reported,
    summary: succeededSummary({ fetched: 2, upserted: 2 }),
  });
  const partitionsBefore = (await h.status(tenantId, 'sage-accounting')).partitions;
  // The user disconnects our app in Sage.
  const doc = await readTokenDoc(h.stack.mongo, id);
  const { refreshToken } = openTokens(keyRingFromConfig(h.stack.config), doc!);
  const grantId = h.sim.state.tokens.get(refreshToken!)?.grantId;
  const userId = h.sim.admin.grants('sage-accounting').grants.find((g) => g.grantId === grantId)?.userId;
  assert.ok(userId);
  h.sim.admin.revoke({ provider: 'sage-accounting', refreshToken: refreshToken! });
  const invalidBefore = h.sim.admin.counters().byProvider['sage-accounting'].invalidGrants;
  const reauthMetricBefore = await metricValue('sage_sync_reauthorizations_required_total', {
    provider: 'sage-accounting',
    reason: 'refresh_token_invalid',
  });

  await assert.rejects(
    acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: 1 }),
    (err: unknown) => {
      assert.ok(err instanceof ReauthorizationRequiredError);
      assert.equal(err.reason, 'refresh_token_invalid');
      return true;
    },
  );
  assert.equal(
    h.sim.admin.counters().byProvider['sage-accounting'].invalidGrants - invalidBefore,
    1,
    'exactly one invalid_grant',
  );
  assert.equal(
    (await metricValue('sage_sync_reauthorizations_required_total', {
      provider: 'sage-accounting',
      reason: 'refresh_token_invalid',
    })) - reauthMetricBefore,
    1,
    'the reauthorization is counted in the worker metrics',
  );
  const st = await h.waitForStatus(tenantId, 'sage-accounting', (s) => s.authorizationUrl !== null);
  assert.equal(st.state, 'reauthorization_required', JSON.stringify(st));
  assert.equal(st.reason, 'refresh_token_invalid');
  // Further callers are refused at once, without calling Sage.
  await assert.rejects(
    acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }),
    ReauthorizationRequiredError,
  );
  assert.equal(h.sim.admin.counters().byProvider['sage-accounting'].invalidGrants - invalidBefore, 1);

  // Side effects run right after the state change (status answers first): poll for them.
  await eventually(async () => {
    const sched = await h.stack.client.schedule.getHandle(syncScheduleId('sage-accounting', tenantId)).describe();
    assert.equal(sched.state.paused, true);
    const conn = await h.stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: id } as never);
    assert.equal(conn?.state, 'reauthorization_required');
    assert.equal(conn?.reason, 'refresh_token_invalid');
  });

  // Webhook: delivered despite a first 503 (retried), signed, with the event id in header and body.
  const deadline = Date.now() + 60_000;
  while (!hook.received.some((r) => r.body.includes(id)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 250));
  const got = hook.received.find((r) => r.body.includes(id));
  assert.ok(got, 'webhook received');
  const event = JSON.parse(got.body);
  assert.equal(event.type, 'connection.reauthorization_required');
  assert.equal(event.reason, 'refresh_token_invalid');
  assert.equal(got.headers['x-sage-sync-event-id'], event.id);
  assert.ok(verifySignature(SECRET, got.body, got.headers['x-sage-sync-signature'] as string));
  assert.ok(event.authorizationUrl, 'the notification carries the fresh consent URL');

  // Re-consent (the same Sage user) through the URL from status: same workflow run, partitions and sync state kept,
  // schedule resumed.
  h.sim.admin.nextConsent({ provider: 'sage-accounting', userId });
  const callback = await h.followConsent(st.authorizationUrl!);
  const res = await h.callback(callback);
  assert.equal(res.status, 200, res.body);
  const back = await h.status(tenantId, 'sage-accounting');
  assert.equal(back.state, 'connected');
  assert.equal(back.reason, null);
  assert.ok(back.tokenVersion! > 1);
  assert.deepEqual(back.partitions.map((p) => p.id).sort(), partitionsBefore.map((p) => p.id).sort());
  assert.deepEqual(
    Object.keys(back.lastSync).sort(),
    partitionsBefore.map((p) => p.id).sort(),
    'sync state kept for every business',
  );
  assert.equal(back.lastSync[reported]?.fetched, 2, 'the last reported summary survived the reauthorization');
  assert.equal((await handle.describe()).runId, runId);
  assert.equal(
    (await h.stack.client.schedule.getHandle(syncScheduleId('sage-accounting', tenantId)).describe()).state.paused,
    false,
  );
  const ok = await acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' });
  assert.equal(ok.tokenVersion, back.tokenVersion);
  while (
    !hook.received.some((r) => r.body.includes('connection.recovered') && r.body.includes(id)) &&
    Date.now() < deadline
  )
    await new Promise((r) => setTimeout(r, 250));
  assert.ok(hook.received.some((r) => r.body.includes('connection.recovered') && r.body.includes(id)));
});

test('transient token-endpoint failures (503) keep the connection connected with the error visible', async () => {
  const tenantId = await connect('sage-accounting', 'transient');
  h.sim.admin.addFaults({ provider: 'sage-accounting', scope: 'token', kind: 'status', status: 503 });
  try {
    // The caller's version was rejected and no new one can be had right now: a transient error, no reauthorization.
    await assert.rejects(
      acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: 1 }),
      TokenUnavailableError,
    );
    const st = await h.status(tenantId, 'sage-accounting');
    assert.equal(st.state, 'connected');
    assert.equal(st.reason, 'token_refresh_failing');
    assert.match(st.lastError ?? '', /503/);
  } finally {
    h.sim.admin.clearFaults();
  }
  const r = await acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: 1 });
  assert.equal(r.tokenVersion, 2);
  assert.equal((await h.status(tenantId, 'sage-accounting')).reason, null);
});

test('history holds no plaintext failure: a Sage error text from a failed refresh is encrypted, and the codec decodes it', async () => {
  const tenantId = await connect('sage-accounting', 'failure-text');
  const sageText = 'The authorization server could not handle the request.';
  await forcedRefreshRefusedUnder(tenantId, {
    provider: 'sage-accounting',
    scope: 'token',
    kind: 'status',
    status: 503,
  });
  const handle = h.stack.client.workflow.getHandle(connectionWorkflowId('sage-accounting', tenantId));
  const history = await handle.fetchHistory();
  const failures = (history.events ?? []).flatMap((e) =>
    e.activityTaskFailedEventAttributes?.failure ? [e.activityTaskFailedEventAttributes.failure] : [],
  );
  assert.ok(failures.length > 0, 'the refresh activity failed in history');
  const raw = JSON.stringify(history);
  assert.ok(!raw.includes(sageText), "Sage's error text is not in the stored history");
  assert.ok(!raw.includes('API 503 on'), 'nor our message around it');
  // What an operator sees through the codec (the Temporal UI's codec endpoint does the same): the full message.
  const codec = new EncryptionCodec(codecKeyRingFromConfig(h.stack.config));
  const [decoded] = await codec.decode([failures[0]!.encodedAttributes!]);
  const attrs = defaultPayloadConverter.fromPayload<{ message: string; stack_trace: string }>(decoded!);
  assert.match(attrs.message, /503/);
  assert.ok(attrs.message.includes(sageText), attrs.message);
});

test('a refresh that failed without reaching Sage (429) leaves no doubt: a later real revocation reads as refresh_token_invalid, not refresh_response_lost', async () => {
  const tenantId = await connect('sage-accounting', 'stale-lease');
  const id = connectionWorkflowId('sage-accounting', tenantId);
  await forcedRefreshRefusedUnder(tenantId, {
    provider: 'sage-accounting',
    scope: 'token',
    kind: 'status',
    status: 429,
    retryAfterSeconds: 1,
  });
  const doc = await readTokenDoc(h.stack.mongo, id);
  assert.equal(doc?.version, 1);
  // The user then really disconnects our app in Sage.
  const { refreshToken } = openTokens(keyRingFromConfig(h.stack.config), doc!);
  h.sim.admin.revoke({ provider: 'sage-accounting', refreshToken: refreshToken! });
  await assert.rejects(
    acquireAccessToken(
      deps(),
      { tenantId, provider: 'sage-accounting' },
      { rejectedTokenVersion: 1, deadlineMs: 120_000 },
    ),
    (err: unknown) => {
      assert.ok(err instanceof ReauthorizationRequiredError, String(err));
      assert.equal(err.reason, 'refresh_token_invalid');
      return true;
    },
  );
  const st = await h.waitForStatus(tenantId, 'sage-accounting', (s) => s.state === 'reauthorization_required');
  assert.equal(st.reason, 'refresh_token_invalid');
});

test('continue-as-new keeps the whole state (tokens, partitions, sync state, counters)', async () => {
  const tenantId = uniqueName('can');
  const id = await h.start({ tenantId, provider: 'sage-accounting', __maxHistoryEvents: 60 } as never);
  workflowIds.push(id);
  const handle = h.stack.client.workflow.getHandle(id);
  const firstRun = (await handle.describe()).runId;
  const res = await h.consent(tenantId, 'sage-accounting');
  assert.equal(res.status, 200, res.body);
  const before = await waitForFirstSync(tenantId);
  await handle.signal(syncReportSignal, {
    partitionId: before.partitions[0]!.id,
    summary: succeededSummary(),
  });
  let v = 1;
  for (let i = 0; i < 12; i++)
    v = (await acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: v }))
      .tokenVersion;
  const after = await h.waitForStatus(tenantId, 'sage-accounting', (s) => s.tokenVersion === v);
  assert.notEqual((await handle.describe()).runId, firstRun, 'continued as new');
  assert.equal(after.state, 'connected');
  assert.equal(after.refreshCount, 12);
  assert.deepEqual(after.partitions, before.partitions);
  assert.deepEqual(
    Object.keys(after.lastSync).sort(),
    before.partitions.map((p) => p.id).sort(),
    'sync state carried for every business',
  );
  assert.equal(
    after.lastSync[before.partitions[0]!.id]?.fetched,
    1,
    'the last reported summary carried across continue-as-new',
  );
});

test('disconnect: revoke at Sage, delete tokens and schedule, end as disconnected', async () => {
  const tenantId = await connect('sage-200', 'bye');
  const id = connectionWorkflowId('sage-200', tenantId);
  const revokesBefore = h.sim.admin.counters().byProvider['sage-200'].revokes;
  const handle = h.stack.client.workflow.getHandle(id);
  await handle.signal(disconnectSignal, {});
  const final = await handle.result();
  assert.equal(final.state, 'disconnected');
  assert.equal(h.sim.admin.counters().byProvider['sage-200'].revokes - revokesBefore, 1);
  assert.equal(await readTokenDoc(h.stack.mongo, id), null);
  await assert.rejects(h.stack.client.schedule.getHandle(syncScheduleId('sage-200', tenantId)).describe());
  const conn = await h.stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: id } as never);
  assert.equal(conn?.state, 'disconnected');
  await assert.rejects(acquireAccessToken(deps(), { tenantId, provider: 'sage-200' }), ReauthorizationRequiredError);
});

test('keep-alive: an idle tenant refreshes before its refresh token lapses, woken by one durable timer', async () => {
  const defaults = h.sim.admin.settings();
  // A 30-second refresh token for this consent: keep-alive is due 10 s before it lapses (20% of life, 10 s floor).
  h.sim.admin.settings({ sageAccounting: { refreshTokenTtlSeconds: 30 } });
  const tenantId = await connect('sage-accounting', 'idle');
  h.sim.admin.settings({ sageAccounting: { refreshTokenTtlSeconds: defaults.sageAccounting.refreshTokenTtlSeconds } });
  const id = connectionWorkflowId('sage-accounting', tenantId);
  const handle = h.stack.client.workflow.getHandle(id);
  const st0 = await h.status(tenantId, 'sage-accounting');
  assert.equal(Date.parse(st0.nextWakeAt!), Date.parse(st0.refreshTokenExpiresAt!) - 10_000);
  await new Promise((r) => setTimeout(r, 1_000));
  const eventsBefore = (await handle.fetchHistory()).events?.length ?? 0;
  const st = await h.waitForStatus(tenantId, 'sage-accounting', (s) => s.refreshCount === 1, 45_000);
  assert.equal(st.state, 'connected');
  assert.ok(
    Date.parse(st.refreshTokenExpiresAt!) > Date.now() + 30 * 86400_000,
    'refresh token renewed for its full life',
  );
  await new Promise((r) => setTimeout(r, 2_000));
  const events = (await handle.fetchHistory()).events ?? [];
  const cycle = events.slice(eventsBefore);
  const timers = cycle.filter((e) => e.timerStartedEventAttributes).length;
  const days = (defaults.sageAccounting.refreshTokenTtlSeconds * 0.8) / 86400;
  console.log(
    `keep-alive cycle: ${cycle.length} history events, ${timers} timer(s); with Sage Accounting's ${defaults.sageAccounting.refreshTokenTtlSeconds / 86400}-day refresh token one cycle per ${days.toFixed(1)} days → ${(cycle.length / days).toFixed(2)} events per idle tenant-day`,
  );
  assert.ok(timers <= 2, 'one timer to the next deadline, no polling');
  assert.ok(cycle.length / days <= 5, 'at most 5 history events per idle tenant-day');
});

test('no plaintext token in any workflow history (raw, as stored) or MongoDB document', async () => {
  // Self-contained: this test has tokens issued itself (a consent and five forced refreshes, 12 tokens) rather than
  // relying on what earlier tests in the file happened to issue; it still scans everything on the task queue.
  const issuedBefore = new Set((h.sim.admin.issuedTokens() as { tokens: string[] }).tokens);
  const tenantId = await connect('sage-accounting', 'plaintext-scan');
  let version = (await acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' })).tokenVersion;
  for (let i = 0; i < 5; i++) {
    const next = await acquireAccessToken(
      deps(),
      { tenantId, provider: 'sage-accounting' },
      { rejectedTokenVersion: version },
    );
    assert.equal(next.tokenVersion, version + 1, 'a forced refresh rotates the tokens');
    version = next.tokenVersion;
  }
  const { tokens, codes } = h.sim.admin.issuedTokens() as { tokens: string[]; codes: string[] };
  assert.ok(tokens.filter((t) => !issuedBefore.has(t)).length >= 12, 'this test issued its own tokens');
  assert.ok(tokens.length > 10);
  const secrets = [...tokens, ...codes].filter((t) => t.length >= 16);
  const haystacks: string[] = [];
  for await (const wf of h.stack.client.workflow.list({
    query: `TaskQueue = "${h.stack.config.TEMPORAL_TASK_QUEUE}"`,
  })) {
    const history = await h.stack.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    haystacks.push(JSON.stringify(history), Buffer.from(JSON.stringify(history)).toString('latin1'));
  }
  assert.ok(haystacks.length > 0);
  for (const name of await h.stack.mongo.db.listCollections().toArray()) {
    for (const doc of await h.stack.mongo.db.collection(name.name).find({}).toArray())
      haystacks.push(JSON.stringify(doc));
  }
  const all = haystacks.join('\n');
  const leaks = secrets.filter((s) => all.includes(s));
  assert.deepEqual(leaks, [], 'no issued token or code appears in plaintext');
});
