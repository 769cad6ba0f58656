/**
 * The refresh lease as pure logic: who may call Sage now, and what a later `invalid_grant` means. Also the carried
 * (sealed) refresh answer that rides in heartbeat details: bound to its connection and version.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mayHaveReachedSage } from '../../src/activities/tokens.js';
import { SageApiError, SageNetworkError, SageOAuthError } from '../../src/errors.js';
import { keyRing } from '../../src/lib/crypto.js';
import { leaseState, openCarriedAnswer, REFRESH_LEASE_MS, sealCarriedAnswer } from '../../src/tokens/store.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

test('a live lease blocks; an expired one is free with doubt; a released one is free with what its owner knew', () => {
  assert.deepEqual(leaseState({ pendingRefresh: null }, 1, t0), { kind: 'free', doubt: false, attemptId: null });
  const live = { fromVersion: 1, attemptId: 'a', startedAt: t0, expiresAt: at(60_000), released: false, doubt: false };
  assert.equal(leaseState({ pendingRefresh: live }, 1, at(59_000)).kind, 'live');
  assert.deepEqual(leaseState({ pendingRefresh: live }, 1, at(60_000)), { kind: 'free', doubt: true, attemptId: 'a' });
  assert.deepEqual(leaseState({ pendingRefresh: { ...live, released: true } }, 1, at(1_000)), {
    kind: 'free',
    doubt: false,
    attemptId: 'a',
  });
  assert.deepEqual(leaseState({ pendingRefresh: { ...live, released: true, doubt: true } }, 1, at(1_000)), {
    kind: 'free',
    doubt: true,
    attemptId: 'a',
  });
  // A lease on another version says nothing about this one.
  assert.deepEqual(leaseState({ pendingRefresh: live }, 2, at(1_000)), { kind: 'free', doubt: false, attemptId: 'a' });
  // A marker written before leases existed: live for REFRESH_LEASE_MS after it was set, then doubtful.
  const legacy = { fromVersion: 1, attemptId: 'old', startedAt: t0 };
  assert.equal(leaseState({ pendingRefresh: legacy }, 1, at(REFRESH_LEASE_MS - 1)).kind, 'live');
  assert.deepEqual(leaseState({ pendingRefresh: legacy }, 1, at(REFRESH_LEASE_MS)), {
    kind: 'free',
    doubt: true,
    attemptId: 'old',
  });
});

test('which failed token calls may have rotated the refresh token at Sage', () => {
  assert.equal(mayHaveReachedSage(new SageOAuthError('sage-accounting', 400, 'invalid_grant')), false);
  assert.equal(mayHaveReachedSage(new SageApiError('sage-accounting', 429, '/token', 'slow down')), false);
  assert.equal(mayHaveReachedSage(new SageApiError('sage-accounting', 307, '/token', 'redirect refused')), false);
  assert.equal(mayHaveReachedSage(new SageNetworkError('sage-accounting', 'ECONNREFUSED', 'refused')), false);
  assert.equal(mayHaveReachedSage(new SageApiError('sage-accounting', 503, '/token', 'unavailable')), true);
  assert.equal(mayHaveReachedSage(new SageApiError('sage-accounting', 200, 'token', 'no access_token')), true);
  assert.equal(mayHaveReachedSage(new SageNetworkError('sage-accounting', 'ETIMEDOUT', 'timeout')), true);
  assert.equal(mayHaveReachedSage(new SageNetworkError('sage-accounting', 'ECONNRESET', 'reset')), true);
  assert.equal(mayHaveReachedSage(new Error('aborted')), true);
});

test('a carried refresh answer opens only for its own connection and version', () => {
  const ring = keyRing({ id: 'k', key: Buffer.alloc(32, 1) });
  const answer = {
    tokens: { accessToken: 'at-secret', refreshToken: 'rt-secret', expiresIn: 300, refreshTokenExpiresIn: 2_678_400 },
    previous: { refreshToken: 'rt-old', refreshTokenExpiresAt: at(1_000), refreshTokenLifetimeSec: 2_678_400 },
  };
  const carried = sealCarriedAnswer(ring, 'wf-a', 4, answer);
  assert.ok(!JSON.stringify(carried).includes('secret'), 'sealed');
  assert.deepEqual(openCarriedAnswer(ring, 'wf-a', 4, carried), answer);
  assert.equal(openCarriedAnswer(ring, 'wf-a', 5, carried), null, 'another version: not ours');
  assert.throws(() => openCarriedAnswer(ring, 'wf-b', 4, carried), 'another connection: the AAD does not match');
  assert.equal(openCarriedAnswer(ring, 'wf-a', 4, undefined), null);
  assert.equal(openCarriedAnswer(ring, 'wf-a', 4, { checkpoint: 3 }), null);
});
