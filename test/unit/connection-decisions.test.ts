/**
 * The decisions `tenantConnection`'s handlers used to make themselves (src/connection/decisions.ts) and the one
 * reducer entry point (src/connection/events.ts): each pinned here, so the shell only forwards.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connectionWorkflowId } from '../../src/messages.js';
import * as D from '../../src/connection/decisions.js';
import { reduce } from '../../src/connection/events.js';
import * as M from '../../src/connection/machine.js';
import { ErrorTypes } from '../../src/error-types.js';

const WF = 'sage-connection:sage-accounting:acme';
const T0 = Date.parse('2026-01-01T00:00:00Z');
const idle: D.ShellFlags = { disconnecting: false, draining: false };

function base(): M.MachineState {
  const p = M.parseInput({ tenantId: 'acme', provider: 'sage-accounting' }, WF, connectionWorkflowId);
  assert.ok(p.ok);
  return M.initialState(p.value, WF);
}
function token(version: number, now: number, life = 300): M.TokenInfo {
  return {
    version,
    accessTokenExpiresAt: now + life * 1000,
    accessTokenLifetimeSec: life,
    refreshTokenExpiresAt: now + 31 * 86400_000,
    refreshTokenLifetimeSec: 31 * 86400,
    obtainedAt: now,
  };
}
const consent = (nonce: string, now: number): M.Consent => ({
  nonce,
  expiresAt: now + 60_000,
  url: `https://sage/x?state=a.${nonce}.b.c`,
});
function connected(now = T0, version = 1): M.MachineState {
  const s = reduce(base(), { type: 'consentIssued', consent: consent('n1', now) }, now).state;
  return reduce(
    s,
    {
      type: 'consentCompleted',
      token: token(version, now),
      country: 'GB',
      test: { ok: true, available: [{ id: 'b1', name: 'One' }], leadBusinessId: 'b1' },
    },
    now,
  ).state;
}
const failure = (p: Partial<D.FailureInfo>): D.FailureInfo => ({
  type: null,
  nonRetryable: false,
  reason: null,
  message: 'boom',
  ...p,
});

describe('refresh failures are classified by the machine', () => {
  test('only a non-retryable SageOAuth failure is definitive; the reason defaults to refresh_token_invalid', () => {
    assert.deepEqual(D.classifyRefreshFailure(failure({ type: ErrorTypes.SageOAuth, nonRetryable: true })), {
      definitive: true,
      reason: 'refresh_token_invalid',
      message: 'boom',
    });
    assert.equal(D.classifyRefreshFailure(failure({ type: ErrorTypes.SageOAuth })).definitive, false);
    assert.equal(D.classifyRefreshFailure(failure({ type: ErrorTypes.SageApi, nonRetryable: true })).definitive, false);
    assert.equal(
      D.classifyRefreshFailure(failure({ type: ErrorTypes.SageOAuth, nonRetryable: true, reason: 'client_invalid' }))
        .reason,
      'client_invalid',
    );
  });
  test('reduce(refreshFailed): definitive → reauthorization_required; transient → still connected, retry scheduled', () => {
    const s = connected();
    const definitive = reduce(
      s,
      { type: 'refreshFailed', failure: failure({ type: ErrorTypes.SageOAuth, nonRetryable: true }) },
      T0 + 1000,
    );
    assert.equal(definitive.state.state, 'reauthorization_required');
    assert.equal(definitive.state.reason, 'refresh_token_invalid');
    const transient = reduce(
      s,
      { type: 'refreshFailed', failure: failure({ type: ErrorTypes.SageNetwork }) },
      T0 + 1000,
    );
    assert.equal(transient.state.state, 'connected');
    assert.ok(transient.state.nextRefreshRetryAt! > T0 + 1000);
  });
});

describe('update admission', () => {
  test('getAccessToken: not connected → reauthorize with the reason; disconnecting → disconnected; draining → retry', () => {
    assert.deepEqual(D.admitTokenRequest(base(), idle), { kind: 'reauthorize', reason: 'awaiting_consent' });
    const s = connected();
    assert.equal(D.admitTokenRequest(s, idle), null);
    assert.deepEqual(D.admitTokenRequest(s, { ...idle, disconnecting: true }), {
      kind: 'reauthorize',
      reason: 'disconnected',
    });
    assert.equal(D.admitTokenRequest(s, { ...idle, draining: true })?.kind, 'retryLater');
  });
  test('completeAuthorization: unknown state → invalidState; a second one while authorizing → retry later', () => {
    const s = reduce(base(), { type: 'consentIssued', consent: consent('n1', T0) }, T0).state;
    assert.equal(D.admitConsentCompletion(s, 'a.nope.b.c', T0, idle)?.kind, 'invalidState');
    assert.equal(D.admitConsentCompletion(s, 'a.n1.b.c', T0, idle), null);
    assert.equal(D.admitConsentCompletion(s, 'a.n1.b.c', T0, { ...idle, authorizing: true })?.kind, 'retryLater');
    assert.equal(D.admitConsentCompletion(s, 'a.n1.b.c', T0 + 61_000, idle)?.kind, 'invalidState', 'expired');
  });
  test('a consent completion is superseded by a disconnect that arrived meanwhile, or one already done', () => {
    assert.equal(D.supersededByDisconnect(connected(), idle), false);
    assert.equal(D.supersededByDisconnect(connected(), { ...idle, disconnecting: true }), true);
    assert.equal(D.supersededByDisconnect(reduce(connected(), { type: 'disconnected' }, T0).state, idle), true);
  });
  test('beginAuthorization: refused once disconnected or disconnecting', () => {
    assert.equal(D.admitConsentLink(base(), idle), null);
    assert.equal(D.admitConsentLink(base(), { ...idle, disconnecting: true })?.kind, 'invalidState');
    assert.equal(
      D.admitConsentLink(reduce(connected(), { type: 'disconnected' }, T0).state, idle)?.kind,
      'invalidState',
    );
  });
});

describe('getAccessToken answers', () => {
  test('before the refresh: the request decides; after it: the rejected version still current → unavailable', () => {
    const s = connected();
    assert.equal(D.answerTokenRequest(s, T0, {}, false).kind, 'lease');
    assert.equal(D.answerTokenRequest(s, T0, { rejectedTokenVersion: 1 }, false).kind, 'refresh');
    const after = D.answerTokenRequest({ ...s, lastError: 'Sage 503' }, T0, { rejectedTokenVersion: 1 }, true);
    assert.deepEqual(after, { kind: 'unavailable', message: 'refresh failed: Sage 503' });
    // A newer version came out of the refresh: the caller gets it.
    const newer = reduce(s, { type: 'refreshSucceeded', token: token(2, T0), calledSage: true }, T0).state;
    const lease = D.answerTokenRequest(newer, T0, { rejectedTokenVersion: 1 }, true);
    assert.equal(lease.kind === 'lease' && lease.lease.tokenVersion, 2);
  });
  test('after a failed refresh the current token is handed out only while it outlives the skew floor', () => {
    const s = connected();
    const nearEnd = T0 + (300 - M.SKEW_SECONDS - 10) * 1000; // inside the margin, still above the floor
    assert.equal(D.answerTokenRequest(s, nearEnd, {}, false).kind, 'refresh');
    assert.equal(D.answerTokenRequest(s, nearEnd, {}, true).kind, 'lease');
    const pastFloor = T0 + (300 - M.SKEW_SECONDS + 1) * 1000;
    assert.equal(D.answerTokenRequest(s, pastFloor, {}, true).kind, 'unavailable');
  });
  test('not connected: rejected with the reason, before and after', () => {
    const s = reduce(connected(), { type: 'disconnected' }, T0).state;
    assert.deepEqual(D.answerTokenRequest(s, T0, {}, false), { kind: 'reject', reason: 'disconnected' });
    assert.deepEqual(D.answerTokenRequest(s, T0, {}, true), { kind: 'reject', reason: 'disconnected' });
  });
});

describe('defaults the shell used to fill in', () => {
  test('disconnect revokes unless told not to, and an unreadable request still revokes', () => {
    assert.deepEqual(D.disconnectRequested(true, undefined), { revoke: true });
    assert.deepEqual(D.disconnectRequested(true, false), { revoke: false });
    assert.deepEqual(D.disconnectRequested(false, undefined), { revoke: true });
  });
  test('syncNow without a mode is incremental; a code exchange without a reason is authorization_failed', () => {
    const s = connected();
    assert.deepEqual(reduce(s, { type: 'syncRequested' }, T0).commands, [{ type: 'triggerSync', mode: 'incremental' }]);
    const failed = reduce(base(), { type: 'codeExchangeFailed', failure: failure({ message: 'x' }) }, T0);
    assert.equal(failed.state.reason, 'authorization_failed');
    assert.equal(failed.state.lastError, 'x');
  });
  test('consent links: the requested country, else the connection’s; test args carry the Sage 200 edition', () => {
    const s = connected();
    assert.equal(D.consentCountry(s, 'IE'), 'IE');
    assert.equal(D.consentCountry(s, undefined), 'GB');
    assert.deepEqual(D.connectionTestArgs(s, WF), { workflowId: WF, provider: 'sage-accounting' });
    const wf200 = connectionWorkflowId('sage-200', 'acme');
    const p = M.parseInput(
      { tenantId: 'acme', provider: 'sage-200', sage200: { edition: 'sage200' } },
      wf200,
      connectionWorkflowId,
    );
    assert.ok(p.ok);
    assert.deepEqual(D.connectionTestArgs(M.initialState(p.value, wf200), wf200), {
      workflowId: wf200,
      provider: 'sage-200',
      edition: 'sage200',
    });
  });
  test('keep-alive: a test after a refresh that produced a new token while connected, not otherwise', () => {
    const s = connected();
    assert.equal(D.keepAliveTestDue(s, 1), false, 'same version: nothing new to test');
    const refreshed = reduce(s, { type: 'refreshSucceeded', token: token(2, T0), calledSage: true }, T0).state;
    assert.equal(D.keepAliveTestDue(refreshed, 1), true);
    assert.equal(D.keepAliveTestDue(reduce(refreshed, { type: 'disconnected' }, T0).state, 1), false);
    assert.deepEqual(D.wakeAction('renewConsent'), {
      refresh: false,
      commands: [{ type: 'issueConsent', ttlMs: M.STATUS_CONSENT_TTL_MS }],
    });
    assert.deepEqual(D.wakeAction('keepAliveRefresh'), { refresh: true });
  });
});

describe('reduce is the machine: each event gives what its reducer gives', () => {
  test('state-only events: consent issued/consumed, notification queued/settled, command failed, cleanup', () => {
    const s = connected();
    assert.deepEqual(reduce(s, { type: 'consentIssued', consent: consent('n2', T0) }, T0), {
      state: M.consentIssued(s, consent('n2', T0), T0),
      commands: [],
    });
    const issued = M.consentIssued(s, consent('n2', T0), T0);
    assert.deepEqual(reduce(issued, { type: 'consentConsumed', state: 'a.n2.b.c' }, T0).state.consents, []);
    const queued = reduce(s, { type: 'notificationQueued', eventType: 'connection.recovered' }, T0).state;
    assert.deepEqual(queued, M.notificationQueued(s, 'connection.recovered', T0).state);
    const id = queued.pendingNotifications.at(-1)!.id;
    assert.deepEqual(reduce(queued, { type: 'notificationSettled', eventId: id }, T0).state.pendingNotifications, []);
    assert.equal(
      reduce(s, { type: 'commandFailed', command: 'ensureSchedule', message: 'Temporal down' }, T0).state.lastError,
      'ensureSchedule failed: Temporal down',
    );
    const gone = reduce(s, { type: 'disconnected' }, T0).state;
    assert.equal(reduce(gone, { type: 'cleanupFinished', revokeError: null }, T0).state.lastError, null);
    assert.equal(
      reduce(gone, { type: 'cleanupFinished', revokeError: 'HTTP 500' }, T0).state.lastError,
      'revoke at Sage failed: HTTP 500',
    );
  });
  test('events with commands equal their reducers', () => {
    const s = connected();
    const summary = {
      status: 'succeeded' as const,
      mode: 'incremental' as const,
      finishedAt: new Date(T0).toISOString(),
      fetched: 1,
      upserted: 1,
      modified: 0,
      deleted: 0,
      quarantined: 0,
    };
    assert.deepEqual(
      reduce(s, { type: 'syncReported', partitionId: 'b1', summary }, T0),
      M.syncReported(s, 'b1', summary, undefined),
    );
    assert.deepEqual(reduce(s, { type: 'syncRequested', mode: 'full' }, T0), M.syncRequested(s, 'full', T0));
    const test = { ok: true, available: [{ id: 'b2', name: 'Two' }], leadBusinessId: 'b2' };
    assert.deepEqual(reduce(s, { type: 'connectionTested', test }, T0), M.connectionTested(s, test, T0));
    const denied = { state: 'a.n1.b.c', error: 'access_denied' };
    const pending = M.consentIssued(base(), consent('n1', T0), T0);
    assert.deepEqual(reduce(pending, { type: 'consentDenied', ...denied }, T0), M.consentDenied(pending, denied, T0));
  });
});
