import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connectionWorkflowId, SyncReportInput, type PartitionSyncSummary } from '../../src/messages.js';
import * as M from '../../src/connection/machine.js';
import type { Reason } from '../../src/connection/reasons.js';
import { succeededSummary } from '../helpers/summaries.js';

const WF = 'sage-connection:sage-accounting:acme';
const T0 = Date.parse('2026-01-01T00:00:00Z');

function base(): M.MachineState {
  const p = M.parseInput({ tenantId: 'acme', provider: 'sage-accounting' }, WF, connectionWorkflowId);
  assert.ok(p.ok);
  return M.initialState(p.value, WF);
}

function token(version: number, now: number, life = 300, refreshLife = 31 * 86400): M.TokenInfo {
  return {
    version,
    accessTokenExpiresAt: now + life * 1000,
    accessTokenLifetimeSec: life,
    refreshTokenExpiresAt: now + refreshLife * 1000,
    refreshTokenLifetimeSec: refreshLife,
    obtainedAt: now,
  };
}

function connected(now = T0, life = 300): M.MachineState {
  const s = M.consentIssued(
    base(),
    { nonce: 'n1', expiresAt: now + 60_000, url: 'https://sage/x?state=a.n1.b.c' },
    now,
  );
  return M.consentCompleted(s, {
    token: token(1, now, life),
    country: 'GB',
    test: { ok: true, available: [{ id: 'b1', name: 'One' }], leadBusinessId: 'b1' },
    now,
  }).state;
}

/** The connection test's answer for a user reaching two businesses, One (b1) and Two (b2); `lead` is the lead one. */
function twoBusinesses(lead: string): M.ConnectionTestResult {
  return {
    ok: true,
    available: [
      { id: 'b1', name: 'One' },
      { id: 'b2', name: 'Two' },
    ],
    leadBusinessId: lead,
  };
}

describe('input', () => {
  test('bad input names the field', () => {
    const r = M.parseInput({ tenantId: 'bad id!', provider: 'sage-accounting' }, WF, connectionWorkflowId);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.message : '', /tenantId/);
  });
  test('a non-canonical workflow id is refused with the right id in the message', () => {
    const r = M.parseInput({ tenantId: 'acme', provider: 'sage-accounting' }, 'whatever', connectionWorkflowId);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.message : '', /sage-connection:sage-accounting:acme/);
  });
});

describe('connections mirror', () => {
  test('Sage 200 connections carry their edition (the sync builds its base URL from it)', () => {
    const wf200 = connectionWorkflowId('sage-200', 'acme');
    for (const [input, edition] of [
      [{ tenantId: 'acme', provider: 'sage-200', sage200: { edition: 'sage200' } }, 'sage200'],
      [{ tenantId: 'acme', provider: 'sage-200' }, 'sage200extra'],
    ] as const) {
      const p = M.parseInput(input, wf200, connectionWorkflowId);
      assert.ok(p.ok);
      assert.deepEqual(M.toMirror(M.initialState(p.value, wf200)).sage200, { edition });
    }
    assert.equal('sage200' in M.toMirror(base()), false, 'Sage Accounting mirrors carry no Sage 200 settings');
  });
});

describe('refresh margin is derived from the token life', () => {
  test('Sage Accounting 300 s tokens: 75 s margin, so a token with 4 minutes left is handed out without a refresh', () => {
    assert.equal(M.refreshMarginSeconds(300), 75);
    const s = connected();
    assert.equal(M.decideAccess(s, T0 + 60_000, {}).kind, 'lease');
    assert.equal(M.decideAccess(s, T0 + 226_000, {}).kind, 'refresh');
  });
  test('Sage 200 8-hour tokens: capped at 15 minutes', () => {
    assert.equal(M.refreshMarginSeconds(8 * 3600), 900);
  });
  test('the margin never exceeds a quarter of the token life (the 30-s skew floor does not apply to short tokens)', () => {
    for (const life of [1, 4, 15, 20, 60, 119, 120, 300, 3600, 8 * 3600, 86_400]) {
      const m = M.refreshMarginSeconds(life);
      assert.ok(m <= life * 0.25 + 1e-9, `life ${life} s → margin ${m} s`);
      assert.ok(m > 0, `life ${life} s → margin ${m} s is positive`);
    }
    assert.equal(M.refreshMarginSeconds(15), 3.75);
    assert.equal(M.refreshMarginSeconds(20), 5);
    assert.equal(M.refreshMarginSeconds(60), 15);
  });
  test('15-s tokens: a token with 6 s left is leased, not refreshed (the old 30-s floor, halved, made it 7.5 s)', () => {
    const s = connected(T0, 15);
    assert.equal(M.decideAccess(s, T0 + 9_000, { minValidSeconds: 5 }).kind, 'lease');
    assert.equal(M.decideAccess(s, T0 + 11_500, { minValidSeconds: 5 }).kind, 'refresh');
  });
  test('15-s tokens: a storm of callers (minValidSeconds 5) spread over 10 s after a refresh all get that one version', () => {
    // The storm that was seen to get two versions: the refresh lands, callers keep arriving for a few seconds.
    const s = connected(T0, 15);
    const refreshedAt = T0 + 12_000;
    const after = M.refreshSucceeded(s, token(2, refreshedAt, 15), refreshedAt, { calledSage: true }).state;
    const versions = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const d = M.decideAccess(after, refreshedAt + i * 200, { minValidSeconds: 5 });
      assert.equal(d.kind, 'lease', `caller ${i} at +${i * 200} ms after the refresh`);
      if (d.kind === 'lease') versions.add(d.lease.tokenVersion);
    }
    assert.deepEqual([...versions], [2]);
  });
  test('minValidSeconds asks for more validity, but never more than a fresh token can give', () => {
    const s = connected();
    assert.equal(M.decideAccess(s, T0 + 120_000, { minValidSeconds: 200 }).kind, 'refresh');
    assert.equal(M.decideAccess(s, T0 + 120_000, {}).kind, 'lease');
    const fresh = connected(T0);
    assert.equal(M.decideAccess(fresh, T0 + 1_000, { minValidSeconds: 3600 }).kind, 'lease', 'capped at life - skew');
  });
});

describe('rejectedTokenVersion', () => {
  test('forces a refresh only while that version is current', () => {
    const s = connected();
    assert.equal(M.decideAccess(s, T0 + 1000, { rejectedTokenVersion: 1 }).kind, 'refresh');
    const after = M.refreshSucceeded(s, token(2, T0 + 2000), T0 + 2000, { calledSage: true }).state;
    const d = M.decideAccess(after, T0 + 3000, { rejectedTokenVersion: 1 });
    assert.equal(d.kind, 'lease');
    assert.equal(d.kind === 'lease' && d.lease.tokenVersion, 2);
  });
});

describe('failures are classified', () => {
  test('one definitive failure → reauthorization_required with reason, fresh consent, schedule paused, notification', () => {
    const s = connected();
    const t = M.refreshFailed(
      s,
      { definitive: true, reason: 'refresh_token_invalid', message: 'invalid_grant' },
      T0 + 1000,
    );
    assert.equal(t.state.state, 'reauthorization_required');
    assert.equal(t.state.reason, 'refresh_token_invalid');
    const types = t.commands.map((c) => c.type);
    assert.deepEqual(types, ['issueConsent', 'mirror', 'pauseSchedule', 'notify']);
    assert.equal(M.decideAccess(t.state, T0 + 2000, {}).kind, 'reject');
  });
  test('transient failures keep the connection connected with the error visible, and back off', () => {
    const s = connected();
    const t = M.refreshFailed(s, { definitive: false, reason: 'x' as Reason, message: 'HTTP 503' }, T0 + 1000);
    assert.equal(t.state.state, 'connected');
    assert.equal(t.state.lastError, 'HTTP 503');
    assert.equal(t.state.reason, 'token_refresh_failing');
    assert.equal(t.state.nextRefreshRetryAt, T0 + 1000 + M.RETRY_BASE_MS);
    // the current token still serves callers while it outlives the skew floor
    assert.ok(M.fallbackLease(t.state, T0 + 200_000));
    assert.equal(M.fallbackLease(t.state, T0 + 290_000), null);
  });
  test('transient failures past refresh-token expiry → refresh_token_expired', () => {
    const s = connected();
    const t = M.refreshFailed(s, { definitive: false, reason: 'x' as Reason, message: 'down' }, T0 + 32 * 86400_000);
    assert.equal(t.state.state, 'reauthorization_required');
    assert.equal(t.state.reason, 'refresh_token_expired');
  });
  test('keep-alive failing near expiry warns refresh_token_expiring', () => {
    let s = connected();
    const ka = M.keepAliveAt(s.token!)!;
    for (let i = 0; i < M.WARN_AFTER_FAILURES; i++)
      s = M.refreshFailed(s, { definitive: false, reason: 'x' as Reason, message: 'down' }, ka + i * 1000).state;
    assert.equal(s.reason, 'refresh_token_expiring');
    assert.equal(s.state, 'connected');
    const ok = M.refreshSucceeded(s, token(2, ka + 10_000), ka + 10_000, { calledSage: true });
    assert.equal(ok.state.reason, null);
    assert.equal(ok.state.refreshFailures, 0);
  });
});

describe('keep-alive timer', () => {
  test('idle connected tenant wakes once, ~20% of the refresh-token life before it lapses', () => {
    const s = connected();
    const w = M.nextWake(s);
    assert.equal(w?.action, 'keepAliveRefresh');
    assert.equal(w?.at, T0 + 31 * 86400_000 * 0.8);
  });
  test('a refresh that did not renew the refresh token does not loop', () => {
    let s = connected();
    const ka = M.keepAliveAt(s.token!)!;
    const t = {
      ...token(2, ka + 1000),
      refreshTokenExpiresAt: s.token!.refreshTokenExpiresAt,
      refreshTokenLifetimeSec: s.token!.refreshTokenLifetimeSec,
    };
    s = M.refreshSucceeded(s, t, ka + 1000, { calledSage: true }).state;
    assert.equal(M.nextWake(s)?.at, s.token!.refreshTokenExpiresAt);
  });
  test('awaiting authorization with no consent URL mints one at once', () => {
    assert.deepEqual(M.nextWake(base()), { at: 0, action: 'renewConsent' });
  });
});

describe('consent', () => {
  test('state is single-use and expires', () => {
    let s = M.consentIssued(base(), { nonce: 'abc', expiresAt: T0 + 1000, url: 'u' }, T0);
    assert.equal(M.checkConsentState(s, 'd2Y.abc.x.mac', T0), null);
    assert.equal(M.checkConsentState(s, 'd2Y.abc.x.mac', T0 + 1000), 'expired state');
    assert.equal(M.checkConsentState(s, 'd2Y.zzz.x.mac', T0), 'unknown or already used state');
    s = M.consentConsumed(s, 'd2Y.abc.x.mac');
    assert.equal(M.checkConsentState(s, 'd2Y.abc.x.mac', T0), 'unknown or already used state');
  });
  test('at most 5 outstanding states, newest first', () => {
    let s = base();
    for (let i = 0; i < 8; i++)
      s = M.consentIssued(s, { nonce: `n${i}`, expiresAt: T0 + 10_000 + i, url: `u${i}` }, T0);
    assert.equal(s.consents.length, M.MAX_OUTSTANDING_CONSENTS);
    assert.equal(M.toStatus(s, T0).authorizationUrl, 'u7');
  });
  test('re-consent after reauthorization keeps partitions and sync state, resumes schedule, notifies recovery', () => {
    let s = connected();
    s = M.syncReported(
      s,
      'b1',
      succeededSummary({ finishedAt: '2026-01-01T01:00:00.000Z', fetched: 3, upserted: 3 }),
    ).state;
    s = M.refreshFailed(s, { definitive: true, reason: 'refresh_token_invalid', message: 'x' }, T0 + 1).state;
    s = M.consentIssued(s, { nonce: 'n2', expiresAt: T0 + 60_000, url: 'u' }, T0 + 2);
    const t = M.consentCompleted(s, {
      token: token(2, T0 + 3),
      country: null,
      test: { ok: true, available: [{ id: 'b1', name: 'One' }], leadBusinessId: 'b1' },
      now: T0 + 3,
    });
    assert.equal(t.state.state, 'connected');
    assert.deepEqual(t.state.partitions, [{ id: 'b1', name: 'One' }]);
    assert.ok(t.state.lastSync.b1);
    assert.equal(t.state.country, 'GB');
    assert.ok(t.commands.some((c) => c.type === 'ensureSchedule' && !c.paused));
    assert.ok(t.commands.some((c) => c.type === 'notify' && c.eventType === 'connection.recovered'));
  });
  test('denied consent records consent_denied and consumes the state', () => {
    const s = M.consentIssued(base(), { nonce: 'n1', expiresAt: T0 + 60_000, url: 'u' }, T0);
    const t = M.consentDenied(s, { state: 'x.n1.y.z', error: 'access_denied' }, T0 + 1);
    assert.equal(t.state.reason, 'consent_denied');
    assert.equal(t.state.consents.length, 0);
  });
});

describe('connection test', () => {
  test('selection ∩ reachable; missing selection reported; lead business drift detected', () => {
    let s = base();
    s = { ...s, state: 'connected', settings: { ...s.settings, businessIds: ['b1', 'b9'] } };
    let t = M.connectionTested(s, twoBusinesses('b1'), T0);
    assert.deepEqual(
      t.state.partitions.map((p) => p.id),
      ['b1'],
    );
    assert.equal(t.state.connection?.reason, 'partition_not_found');
    s = { ...t.state, settings: { ...t.state.settings, businessIds: undefined } as M.Settings };
    t = M.connectionTested(s, twoBusinesses('b2'), T0 + 1);
    assert.equal(t.state.connection?.reason, 'lead_business_changed');
    assert.equal(t.state.partitions.length, 2);
  });
  test('no reachable partitions → connection not available', () => {
    const t = M.connectionTested(
      { ...base(), state: 'connected' },
      { ok: true, available: [], leadBusinessId: null },
      T0,
    );
    assert.equal(t.state.connection?.available, false);
    assert.equal(t.state.connection?.reason, 'no_partitions');
  });
  test('Sage 200: partitions are company ids with the site beside them, filtered by the input selection', () => {
    const p = M.parseInput(
      { tenantId: 'acme', provider: 'sage-200', sage200: { sites: [{ companyId: '2' }] } },
      'sage-connection:sage-200:acme',
      connectionWorkflowId,
    );
    assert.ok(p.ok);
    const s = { ...M.initialState(p.value, 'sage-connection:sage-200:acme'), state: 'connected' as const };
    const t = M.connectionTested(
      s,
      {
        ok: true,
        available: [
          { id: '1', name: 'A', siteId: 's' },
          { id: '2', name: 'B', siteId: 's' },
        ],
        leadBusinessId: null,
      },
      T0,
    );
    assert.deepEqual(t.state.partitions, [{ id: '2', name: 'B', siteId: 's' }]);
  });
});

describe('status never carries a secret and versions only grow', () => {
  test('a late answer about an older version changes nothing', () => {
    const s = connected();
    const newer = M.refreshSucceeded(s, token(3, T0 + 5), T0 + 5, { calledSage: true }).state;
    const late = M.applyTokenMeta(newer, token(2, T0 + 6));
    assert.equal(late.token?.version, 3);
  });
  test('status fields', () => {
    const st = M.toStatus(connected(), T0);
    assert.equal(st.state, 'connected');
    assert.equal(st.tokenVersion, 1);
    assert.equal(st.authorizationUrl, null);
    assert.equal(st.accessTokenExpiresAt, new Date(T0 + 300_000).toISOString());
    assert.ok(!JSON.stringify(st).match(/access_token|refresh_token/));
  });
});

describe('issue 12: unique event ids (item 4)', () => {
  test('ids never repeat across a closed-then-restarted workflow with the same id, and stay put across continue-as-new', () => {
    const input = M.parseInput({ tenantId: 'acme', provider: 'sage-accounting' }, WF, connectionWorkflowId);
    assert.ok(input.ok);
    // Two executions chains of the same workflow id (disconnect, then /connect starts it again): different first run ids.
    const first = M.notificationQueued(
      M.startingState(input.value, WF, 'run-a'),
      'connection.reauthorization_required',
      T0,
    ).event;
    const second = M.notificationQueued(
      M.startingState(input.value, WF, 'run-b'),
      'connection.reauthorization_required',
      T0,
    ).event;
    assert.notEqual(
      first.id,
      second.id,
      'the first alert after a reconnect must not reuse an id that was already delivered',
    );
    // Continue-as-new carries the state: the next id keeps the prefix and counts on.
    const q1 = M.notificationQueued(
      M.startingState(input.value, WF, 'run-a'),
      'connection.reauthorization_required',
      T0,
    );
    const carried = M.parseInput(
      { tenantId: 'acme', provider: 'sage-accounting', __carried: q1.state },
      WF,
      connectionWorkflowId,
    );
    assert.ok(carried.ok, !carried.ok ? carried.message : '');
    const next = M.notificationQueued(M.startingState(carried.value, WF, 'run-a'), 'connection.recovered', T0).event;
    assert.notEqual(next.id, q1.event.id);
    assert.ok(next.id.startsWith(`${WF}:run-a:`));
  });
});

describe('issue 12: carried state is input too (item 6)', () => {
  test('a malformed __carried is bad input naming the field, not a workflow task that fails forever', () => {
    const r = M.parseInput({ tenantId: 'acme', provider: 'sage-accounting', __carried: {} }, WF, connectionWorkflowId);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.message : '', /__carried/);
  });
  test('a carried state of another connection is refused', () => {
    const other = { ...connected(), workflowId: 'sage-connection:sage-accounting:evil', tenantId: 'evil' };
    const r = M.parseInput(
      { tenantId: 'acme', provider: 'sage-accounting', __carried: other },
      WF,
      connectionWorkflowId,
    );
    assert.equal(r.ok, false);
  });
  test('carried state is bounded: an oversized lastSync is refused', () => {
    const summary = succeededSummary({ finishedAt: new Date(T0).toISOString(), fetched: 0, upserted: 0 });
    const lastSync = Object.fromEntries(Array.from({ length: M.MAX_PARTITIONS + 1 }, (_, i) => [`p${i}`, summary]));
    const r = M.parseInput(
      { tenantId: 'acme', provider: 'sage-accounting', __carried: { ...connected(), lastSync } },
      WF,
      connectionWorkflowId,
    );
    assert.equal(r.ok, false);
  });
  test('a valid carried state (also one from before new fields existed) parses', () => {
    const { sageUserId: _u, lastReconsent: _r, eventIdPrefix: _e, ...old } = connected();
    const r = M.parseInput({ tenantId: 'acme', provider: 'sage-accounting', __carried: old }, WF, connectionWorkflowId);
    assert.ok(r.ok, !r.ok ? r.message : '');
  });
  test('our own long texts are cut, not refused: a carried state always parses in the next run', () => {
    const r = M.parseInput(
      { tenantId: 'acme', provider: 'sage-accounting', __carried: { ...connected(), lastError: 'x'.repeat(50_000) } },
      WF,
      connectionWorkflowId,
    );
    assert.ok(r.ok, !r.ok ? r.message : '');
    assert.ok((r.value.__carried?.lastError?.length ?? 0) <= 2_001);
  });
  test('syncReport payloads are validated, and a report for an unknown partition does not grow the state', async () => {
    const { SyncReportInput } = await import('../../src/messages.js');
    const summary = succeededSummary({ finishedAt: new Date(T0).toISOString() });
    assert.equal(SyncReportInput.safeParse({ partitionId: 'b1', summary }).success, true);
    assert.equal(
      SyncReportInput.safeParse({ partitionId: 'b1', summary: { ...summary, fetched: 'lots' } }).success,
      false,
    );
    assert.equal(SyncReportInput.safeParse({ partitionId: 'x'.repeat(10_000), summary }).success, false);
    assert.equal(SyncReportInput.safeParse({ partitionId: 'b1', summary, extra: 1 }).success, false);
    const s = connected();
    assert.deepEqual(Object.keys(M.syncReported(s, 'not-a-partition', summary as never).state.lastSync), []);
    assert.deepEqual(Object.keys(M.syncReported(s, 'b1', summary as never).state.lastSync), ['b1']);
  });
});

describe('issue 12: re-consent safety (item 7)', () => {
  const test0 = (ids: string[], sageUserId: string | null = 'user-a'): M.ConnectionTestResult => ({
    ok: true,
    available: ids.map((id) => ({ id, name: id })),
    leadBusinessId: ids[0] ?? null,
    sageUserId,
  });
  function twoPartitions(): M.MachineState {
    const s = M.consentIssued(
      base(),
      { nonce: 'n1', expiresAt: T0 + 60_000, url: 'https://sage/x?state=a.n1.b.c' },
      T0,
    );
    return M.consentCompleted(s, { token: token(1, T0), country: 'GB', test: test0(['b1', 'b2']), now: T0 }).state;
  }
  test('a new grant reaching none of the partitions is refused, state, tokens and partitions kept', () => {
    const s = twoPartitions();
    assert.equal(M.needsReconsentCheck(s), true);
    const v = M.reconsentVerdict(s, test0(['other'], 'user-b'));
    assert.equal(v.accept, false);
    assert.ok(!v.accept);
    assert.equal(v.reason, 'reconsent_no_partitions');
    const t = M.reconsentRefused(s, { test: test0(['other'], 'user-b'), verdict: v, now: T0 + 1 });
    assert.equal(t.state.state, 'connected');
    assert.deepEqual(t.state.token, s.token);
    assert.deepEqual(t.state.partitions, s.partitions);
    assert.equal(t.state.sageUserId, 'user-a');
    assert.equal(t.state.lastReconsent?.outcome, 'refused');
    assert.equal(t.state.lastReconsent?.userChanged, true);
    assert.match(M.reconsentRefusalMessage(v, true), /reconsent_no_partitions/);
    assert.equal(M.toStatus(t.state, T0).lastReconsent?.sageUserId, 'user-b');
    assert.equal(M.toMirror(t.state).lastReconsent?.outcome, 'refused');
  });
  test('a new grant that cannot be checked is refused too (reconsent_unverified)', () => {
    const v = M.reconsentVerdict(twoPartitions(), { ok: false, available: [], leadBusinessId: null, error: 'boom' });
    assert.equal(!v.accept && v.reason, 'reconsent_unverified');
  });
  test('a new grant reaching only some partitions is accepted and reports the others; a different user is recorded', () => {
    const s = twoPartitions();
    const test = test0(['b1'], 'user-b');
    const v = M.reconsentVerdict(s, test);
    assert.ok(v.accept);
    assert.deepEqual(v.unreachable, ['b2']);
    const next = M.consentCompleted(s, {
      token: token(2, T0 + 1),
      country: null,
      test,
      now: T0 + 1,
      reconsent: v,
    }).state;
    assert.equal(next.state, 'connected');
    assert.equal(next.reason, 'partition_not_found');
    assert.match(next.lastError ?? '', /b2/);
    assert.equal(next.sageUserId, 'user-b');
    assert.deepEqual(next.lastReconsent, {
      at: new Date(T0 + 1).toISOString(),
      outcome: 'accepted',
      reason: 'partition_not_found',
      previousSageUserId: 'user-a',
      sageUserId: 'user-b',
      userChanged: true,
      unreachablePartitions: ['b2'],
    });
    assert.equal(M.toMirror(next).sageUserId, 'user-b');
    // The colleague's lead business differs too: unreachable partitions still decide the reason.
    const led = M.consentCompleted(s, {
      token: token(2, T0 + 1),
      country: null,
      test: { ...test, leadBusinessId: 'elsewhere' },
      now: T0 + 1,
      reconsent: v,
    }).state;
    assert.equal(led.reason, 'partition_not_found');
    assert.match(led.lastError ?? '', /b2.*lead business changed/);
  });
  test('a connection made before the Sage user was recorded learns it on its next check', () => {
    const legacy = { ...connected(), sageUserId: null };
    assert.equal(M.connectionTested(legacy, test0(['b1'], 'user-a'), T0).state.sageUserId, 'user-a');
  });
  test('a first consent (no partitions yet) needs no check', () => {
    assert.equal(M.needsReconsentCheck(base()), false);
  });
});

describe('issue 12: Temporal UI current details', () => {
  test('state, reason and, while awaiting consent, the consent link', () => {
    const s = M.consentIssued(
      base(),
      { nonce: 'n1', expiresAt: T0 + 60_000, url: 'https://sage/x?state=a.n1.b.c' },
      T0,
    );
    const d = M.currentDetails(s, T0);
    assert.match(d, /awaiting_authorization/);
    assert.match(d, /awaiting_consent/);
    assert.ok(d.includes('https://sage/x?state=a.n1.b.c'));
    const c = M.currentDetails(connected(), T0);
    assert.match(c, /`connected`/);
    assert.ok(!c.includes('https://sage/x'), 'no consent link once connected');
  });
});

describe('carried state survives its own continue-as-new', () => {
  test('a token answer with extra fields (the consent activity adds exchangeId) is carried as TokenInfo only, so the next run accepts it', () => {
    // Seen in test/integration/token-refresh.test.ts: a run continued as new right after consent failed with
    // "__carried.token: Invalid input", because the exchange result's `exchangeId` had been stored in state.token.
    const answer = { ...token(1, T0), exchangeId: 'sha256-of-code', staged: true } as M.TokenInfo;
    const s = M.applyTokenMeta(base(), answer);
    assert.deepEqual(Object.keys(s.token!).sort(), Object.keys(token(1, T0)).sort());
    const carried = M.parseInput(
      { tenantId: 'acme', provider: 'sage-accounting', __carried: s },
      WF,
      connectionWorkflowId,
    );
    assert.ok(carried.ok, !carried.ok ? carried.message : '');
  });
});

describe('issue 14: history economy (timer and connections mirror)', () => {
  test('timer re-armed only when the deadline moved earlier: unchanged or later keeps the armed timer', () => {
    assert.deepEqual(M.planTimer(null, null), { kind: 'keep' });
    assert.deepEqual(M.planTimer(null, T0), { kind: 'arm', at: T0 });
    assert.deepEqual(M.planTimer(T0, T0), { kind: 'keep' }, 'unchanged deadline: no cancel, no new timer');
    assert.deepEqual(
      M.planTimer(T0, T0 + 3600_000),
      { kind: 'keep' },
      'later deadline: the armed timer fires early, then the new one is armed',
    );
    assert.deepEqual(
      M.planTimer(T0, T0 - 1),
      { kind: 'rearm', at: T0 - 1 },
      'earlier deadline: the armed one would fire too late',
    );
    assert.deepEqual(M.planTimer(T0, null), { kind: 'cancel' });
  });

  test('an hourly refresh moves the keep-alive later: the timer armed before it is kept (never fires late)', () => {
    const s0 = connected(T0);
    const w0 = M.nextWake(s0);
    assert.ok(w0);
    const s1 = M.refreshSucceeded(s0, token(2, T0 + 3600_000), T0 + 3600_000, { calledSage: true }).state;
    const w1 = M.nextWake(s1);
    assert.ok(w1 && w1.at > w0.at, 'the rotated refresh token moves the keep-alive later');
    assert.equal(M.planTimer(w0.at, w1.at).kind, 'keep');
  });

  test('mirror written only when what connections shows changed', () => {
    const s = connected(T0);
    assert.equal(M.mirrorNeeded(null, s), true, 'unknown (start of a run): write');
    const written = M.toMirror(s);
    assert.equal(M.mirrorNeeded(written, s), false, 'nothing changed: no write');
    assert.equal(M.mirrorNeeded(written, { ...s, lastError: 'boom' }), true, 'a visible field changed: write');
    assert.equal(
      M.mirrorNeeded(written, { ...s, lastSync: { b1: summary('2026-01-01T00:05:00.000Z') } }),
      false,
      'lastSync is not in the document',
    );
  });

  test('a succeeded sync report needs no mirror (its activity wrote lastSyncAt); a failed one does', () => {
    const s = connected(T0);
    const written = M.toMirror(s);
    const ok = summary('2026-01-01T00:05:00.000Z');
    const s1 = M.syncReported(s, 'b1', ok).state;
    assert.equal(M.mirrorNeeded(written, s1), true, 'lastSyncAt moved');
    assert.equal(
      M.mirrorNeeded(M.syncTimeWritten(written, s1, 'b1', ok), s1),
      false,
      'written by syncCustomerPartition',
    );
    const failed = { ...summary('2026-01-01T00:06:00.000Z'), status: 'failed' as const, error: 'x' };
    const s2 = M.syncReported(s1, 'b1', failed).state;
    const w1 = M.syncTimeWritten(written, s1, 'b1', ok);
    assert.equal(
      M.mirrorNeeded(M.syncTimeWritten(w1, s2, 'b1', failed), s2),
      true,
      'a failed report is mirrored by the workflow',
    );
    assert.equal(
      M.syncTimeWritten(w1, s1, 'elsewhere', summary('2026-01-02T00:00:00.000Z')),
      w1,
      'unknown partitions change nothing',
    );
    assert.equal(M.syncTimeWritten(null, s1, 'b1', ok), null, 'unknown stays unknown');
    const older = M.syncTimeWritten(w1, s1, 'b1', summary('2026-01-01T00:01:00.000Z'));
    assert.equal(older?.lastSyncAt, '2026-01-01T00:05:00.000Z', 'lastSyncAt never goes back');
  });

  test('token times written by the refresh activity need no mirror; a late answer about another version does', () => {
    const s = connected(T0);
    const written = M.toMirror(s);
    const s1 = M.refreshSucceeded(s, token(2, T0 + 240_000), T0 + 240_000, { calledSage: true }).state;
    assert.equal(M.mirrorNeeded(written, s1), true);
    assert.equal(
      M.mirrorNeeded(M.tokenTimesWritten(written, s1, 2), s1),
      false,
      'the refresh activity mirrored version 2',
    );
    assert.equal(
      M.tokenTimesWritten(written, s1, 1),
      written,
      'it mirrored another version than the state holds: still unknown',
    );
    // A refresh that also clears a warning changes `reason`: that still needs the workflow's mirror.
    const warned: M.MachineState = {
      ...s,
      reason: 'token_refresh_failing',
      lastError: 'x',
      refreshFailures: 1,
      nextRefreshRetryAt: T0 + 30_000,
    };
    const s2 = M.refreshSucceeded(warned, token(2, T0 + 240_000), T0 + 240_000, { calledSage: true }).state;
    assert.equal(M.mirrorNeeded(M.tokenTimesWritten(M.toMirror(warned), s2, 2), s2), true);
  });
});

function summary(finishedAt: string): PartitionSyncSummary {
  return succeededSummary({ finishedAt, mode: 'incremental' });
}

describe('issue 16: the full-sync request lives in the connection (syncNow full → syncPlan → syncReport)', () => {
  const report = (
    status: 'succeeded' | 'failed',
    mode: 'incremental' | 'full',
    finishedAt = '2026-01-01T01:00:00.000Z',
  ): PartitionSyncSummary => ({
    finishedAt,
    status,
    mode,
    fetched: 1,
    upserted: 1,
    modified: 0,
    deleted: 0,
    quarantined: 0,
  });
  function twoPartitions(): M.MachineState {
    return M.connectionTested(connected(), twoBusinesses('b1'), T0).state;
  }

  test('syncNow full records a request (and still triggers the schedule); incremental records none', () => {
    const s = twoPartitions();
    const inc = M.syncRequested(s, 'incremental', T0 + 5);
    assert.deepEqual(inc.commands, [{ type: 'triggerSync', mode: 'incremental' }]);
    assert.equal(inc.state.fullSyncRequest, null);
    assert.equal(M.toSyncPlan(inc.state).fullSyncRequest, null);
    const full = M.syncRequested(s, 'full', T0 + 5);
    assert.deepEqual(full.commands, [{ type: 'triggerSync', mode: 'full' }], 'the same command as before');
    const plan = M.toSyncPlan(full.state);
    assert.ok(plan.fullSyncRequest, 'syncPlan answers the request');
    assert.equal(plan.fullSyncRequest.requestedAt, new Date(T0 + 5).toISOString());
    assert.deepEqual(plan, {
      state: 'connected',
      reason: null,
      partitions: [
        { id: 'b1', name: 'One' },
        { id: 'b2', name: 'Two' },
      ],
      fullSyncRequest: plan.fullSyncRequest,
    });
    const again = M.syncRequested(full.state, 'full', T0 + 6).state;
    assert.notEqual(again.fullSyncRequest?.id, plan.fullSyncRequest.id, 'each request has its own id');
    // Not connected: nothing is triggered, so nothing is recorded either (as before).
    assert.equal(M.syncRequested(base(), 'full', T0).state.fullSyncRequest, null);
    // The mirror for readers is unchanged by the request (it is no Mongo flag any more).
    assert.deepEqual(M.toMirror(full.state), M.toMirror(s));
  });

  test("an in-flight run's reports do not clear it; every partition's succeeded full run of the request does", () => {
    let s = M.syncRequested(twoPartitions(), 'full', T0 + 5).state;
    const id = s.fullSyncRequest!.id;
    // A full run planned before the request (no id, or an older request's id) finishes: the request stays.
    s = M.syncReported(s, 'b1', report('succeeded', 'full')).state;
    s = M.syncReported(s, 'b2', report('succeeded', 'full')).state;
    s = M.syncReported(s, 'b1', report('succeeded', 'full'), 'some-older-request').state;
    assert.equal(M.toSyncPlan(s).fullSyncRequest?.id, id, 'a run planned without this request does not clear it');
    assert.equal(s.lastSync.b1?.status, 'succeeded', 'its reports still update lastSync');
    // The run planned with the request: one partition done is not enough.
    s = M.syncReported(s, 'b1', report('succeeded', 'full'), id).state;
    assert.equal(M.toSyncPlan(s).fullSyncRequest?.id, id, 'b2 has not reported yet');
    s = M.syncReported(s, 'b2', report('succeeded', 'full'), id).state;
    assert.equal(M.toSyncPlan(s).fullSyncRequest, null, 'cleared once every partition ran full with it');
    assert.equal(s.fullSyncRequest, null);
  });

  test('a failed (or incremental) partition keeps it; a newer request replaces the one a run is honouring', () => {
    let s = M.syncRequested(twoPartitions(), 'full', T0 + 5).state;
    const id = s.fullSyncRequest!.id;
    s = M.syncReported(s, 'b1', report('succeeded', 'full'), id).state;
    s = M.syncReported(s, 'b2', report('failed', 'full'), id).state;
    assert.equal(M.toSyncPlan(s).fullSyncRequest?.id, id, 'a failed partition keeps the request');
    s = M.syncReported(s, 'b2', report('succeeded', 'incremental'), id).state;
    assert.equal(M.toSyncPlan(s).fullSyncRequest?.id, id, 'an incremental run does not honour it');
    s = M.syncReported(s, 'unknown', report('succeeded', 'full'), id).state;
    assert.equal(
      M.toSyncPlan(s).fullSyncRequest?.id,
      id,
      'a partition the connection does not have counts for nothing',
    );
    // A new syncNow full while that run is in flight: the in-flight run finishing does not clear the newer request.
    s = M.syncRequested(s, 'full', T0 + 9).state;
    const newer = s.fullSyncRequest!.id;
    assert.deepEqual(s.fullSyncRequest?.done, [], 'a newer request starts over');
    s = M.syncReported(s, 'b2', report('succeeded', 'full'), id).state;
    assert.equal(M.toSyncPlan(s).fullSyncRequest?.id, newer);
    s = M.syncReported(s, 'b1', report('succeeded', 'full'), newer).state;
    s = M.syncReported(s, 'b2', report('succeeded', 'full'), newer).state;
    assert.equal(M.toSyncPlan(s).fullSyncRequest, null);
  });

  test('the request is carried across continue-as-new (validated), and older carried states parse without it', () => {
    const s = M.syncRequested(twoPartitions(), 'full', T0 + 5).state;
    const done = M.syncReported(s, 'b1', report('succeeded', 'full'), s.fullSyncRequest!.id).state;
    const r = M.parseInput(
      { tenantId: 'acme', provider: 'sage-accounting', __carried: done },
      WF,
      connectionWorkflowId,
    );
    assert.ok(r.ok);
    const next = M.startingState(r.value, WF, 'run-1');
    assert.deepEqual(next.fullSyncRequest, done.fullSyncRequest);
    assert.equal(next.fullSyncSeq, 1);
    // A state carried by a run from before the request existed: no request, count from 0.
    const { fullSyncRequest: _r, fullSyncSeq: _q, ...old } = connected();
    const o = M.parseInput({ tenantId: 'acme', provider: 'sage-accounting', __carried: old }, WF, connectionWorkflowId);
    assert.ok(o.ok);
    assert.equal(o.value.__carried?.fullSyncRequest, null);
    assert.equal(o.value.__carried?.fullSyncSeq, 0);
    // Bounded like the rest of the carried state.
    const bad = M.parseInput(
      {
        tenantId: 'acme',
        provider: 'sage-accounting',
        __carried: { ...done, fullSyncRequest: { ...done.fullSyncRequest, id: 'x'.repeat(10_000) } },
      },
      WF,
      connectionWorkflowId,
    );
    assert.equal(bad.ok, false);
    // The syncReport signal carries the id (bounded), and a report without one still parses.
    const summary = report('succeeded', 'full');
    assert.equal(SyncReportInput.safeParse({ partitionId: 'b1', summary, fullSyncRequestId: 'r' }).success, true);
    assert.equal(
      SyncReportInput.safeParse({ partitionId: 'b1', summary, fullSyncRequestId: 'x'.repeat(1_000) }).success,
      false,
    );
  });

  test('Sage 200: syncPlan answers the edition (default sage200extra, as the mirror did)', () => {
    const wf = 'sage-connection:sage-200:acme';
    const p = M.parseInput(
      { tenantId: 'acme', provider: 'sage-200', sage200: { edition: 'sage200' } },
      wf,
      connectionWorkflowId,
    );
    assert.ok(p.ok);
    assert.equal(M.toSyncPlan(M.initialState(p.value, wf)).edition, 'sage200');
    const d = M.parseInput({ tenantId: 'acme', provider: 'sage-200' }, wf, connectionWorkflowId);
    assert.ok(d.ok);
    assert.equal(M.toSyncPlan(M.initialState(d.value, wf)).edition, 'sage200extra');
    assert.equal('edition' in M.toSyncPlan(base()), false, 'Sage Accounting has none');
  });
});
