/**
 * The token read path's decision (`decideReadPath`) and the sync's renewing token holder, as pure logic: the store
 * answers exactly when the workflow would lease the stored version as it is, and never for a connection that is not
 * (or no longer) connected or whose refresh has started.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { renewingTokenSource, type AccessToken } from '../../src/sync/tokens.js';
import { decideReadPath, type TokenDocTimes } from '../../src/tokens/read-path.js';
import * as M from '../../src/connection/machine.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const conn = {
  workflowId: 'sage-connection:sage-accounting:acme',
  tenantId: 'acme',
  provider: 'sage-accounting' as const,
};
const connected = { state: 'connected' };

function doc(p: { version?: number; life?: number; obtainedAt?: number; pending?: number | null } = {}): TokenDocTimes {
  const obtainedAt = p.obtainedAt ?? T0;
  const life = p.life ?? 300;
  return {
    version: p.version ?? 3,
    accessTokenExpiresAt: new Date(obtainedAt + life * 1000),
    accessTokenLifetimeSec: life,
    refreshTokenExpiresAt: new Date(obtainedAt + 31 * 86_400_000),
    refreshTokenLifetimeSec: 31 * 86_400,
    obtainedAt: new Date(obtainedAt),
    pendingRefresh: p.pending === undefined || p.pending === null ? null : { fromVersion: p.pending },
  };
}

describe('decideReadPath', () => {
  test('a connected token outside its margin is served from the store', () => {
    assert.deepEqual(decideReadPath(doc(), connected, T0 + 60_000, {}, conn), { use: 'store' });
  });
  test('a rejected version always goes to the workflow (it alone decides refresh vs newer version)', () => {
    assert.equal(decideReadPath(doc(), connected, T0 + 1_000, { rejectedTokenVersion: 3 }, conn).use, 'workflow');
    assert.equal(decideReadPath(doc(), connected, T0 + 1_000, { rejectedTokenVersion: 2 }, conn).use, 'workflow');
  });
  test('no token document, or a connection mirror that is not connected, goes to the workflow', () => {
    assert.equal(decideReadPath(null, connected, T0, {}, conn).use, 'workflow');
    for (const state of ['reauthorization_required', 'disconnected', 'awaiting_authorization', undefined]) {
      const d = decideReadPath(doc(), state ? { state } : {}, T0 + 1_000, {}, conn);
      assert.deepEqual(d.use, 'workflow', `mirror state ${String(state)}`);
    }
    assert.equal(decideReadPath(doc(), null, T0 + 1_000, {}, conn).use, 'workflow', 'no mirror yet');
  });
  test('a refresh started from the stored version (in flight, or failed: a revoked grant) goes to the workflow', () => {
    assert.deepEqual(decideReadPath(doc({ pending: 3 }), connected, T0 + 1_000, {}, conn), {
      use: 'workflow',
      why: 'refresh_started',
    });
    // A marker left from an older version is history: the stored version was committed after it.
    assert.equal(decideReadPath(doc({ pending: 2 }), connected, T0 + 1_000, {}, conn).use, 'store');
  });
  test('input the update validator refuses (negative, fractional, huge, NaN minValidSeconds) is left to the workflow to refuse', () => {
    for (const minValidSeconds of [-1, 1.5, 5_000, Number.NaN]) {
      assert.deepEqual(
        decideReadPath(doc(), connected, T0 + 1_000, { minValidSeconds }, conn),
        { use: 'workflow', why: 'invalid_input' },
        String(minValidSeconds),
      );
    }
    assert.equal(decideReadPath(doc(), connected, T0 + 1_000, { rejectedTokenVersion: -1 }, conn).use, 'workflow');
  });
  test('inside the refresh margin, or shorter than minValidSeconds, goes to the workflow', () => {
    assert.equal(decideReadPath(doc(), connected, T0 + 226_000, {}, conn).use, 'workflow');
    assert.equal(decideReadPath(doc(), connected, T0 + 120_000, { minValidSeconds: 200 }, conn).use, 'workflow');
    assert.equal(decideReadPath(doc(), connected, T0 + 120_000, { minValidSeconds: 100 }, conn).use, 'store');
  });
  test('agrees with the workflow (decideAccess) on every lifetime × age × minValidSeconds', () => {
    for (const life of [15, 60, 300, 8 * 3600]) {
      const s = M.consentCompleted(
        M.consentIssued(
          M.initialState(
            { tenantId: 'acme', provider: 'sage-accounting', sync: { intervalMinutes: 60 } } as never,
            conn.workflowId,
          ),
          { nonce: 'n', expiresAt: T0 + 1, url: 'u' },
          T0,
        ),
        {
          token: {
            version: 3,
            accessTokenExpiresAt: T0 + life * 1000,
            accessTokenLifetimeSec: life,
            refreshTokenExpiresAt: T0 + 31 * 86_400_000,
            refreshTokenLifetimeSec: 31 * 86_400,
            obtainedAt: T0,
          },
          country: null,
          test: { ok: true, available: [{ id: 'b', name: 'B' }], leadBusinessId: 'b' },
          now: T0,
        },
      ).state;
      for (let ageShare = 0; ageShare <= 1.1; ageShare += 0.05) {
        for (const minValidSeconds of [undefined, 0, 5, 60, 600, 3600]) {
          const now = T0 + ageShare * life * 1000;
          const req = minValidSeconds === undefined ? {} : { minValidSeconds };
          const workflow = M.decideAccess(s, now, req).kind === 'lease' ? 'store' : 'workflow';
          assert.equal(
            decideReadPath(doc({ life }), connected, now, req, conn).use,
            workflow,
            `life ${life}, age ${ageShare.toFixed(2)}, min ${minValidSeconds}`,
          );
        }
      }
    }
  });
});

describe('renewingTokenSource (the sync run token holder)', () => {
  function source(life = 300) {
    let version = 0;
    let clock = T0;
    const calls: ({ rejectedTokenVersion?: number } | undefined)[] = [];
    const src = {
      async get(opts?: { rejectedTokenVersion?: number }): Promise<AccessToken> {
        calls.push(opts);
        await new Promise((r) => setTimeout(r, 5));
        version++;
        return {
          accessToken: `t${version}`,
          tokenVersion: version,
          expiresAt: new Date(clock + life * 1000).toISOString(),
          lifetimeSec: life,
        };
      },
    };
    return { src, calls, setClock: (t: number) => (clock = t), clock: () => clock };
  }

  test('keeps its token while outside the margin, renews ahead of expiry (before any 401), one renewal for concurrent pages', async () => {
    const s = source(300);
    const holder = renewingTokenSource(s.src, s.clock);
    assert.equal((await holder.get()).tokenVersion, 1);
    s.setClock(T0 + 200_000);
    assert.equal((await holder.get()).tokenVersion, 1, 'still 100 s left, outside the 75-s margin');
    assert.equal(s.calls.length, 1);
    s.setClock(T0 + 230_000); // 70 s left: inside the margin, not yet expired
    const pages = await Promise.all(Array.from({ length: 10 }, () => holder.get()));
    assert.deepEqual(new Set(pages.map((p) => p.tokenVersion)), new Set([2]));
    assert.equal(s.calls.length, 2, 'ten concurrent pages shared one renewal');
  });
  test('a 401: asks once with rejectedTokenVersion; a page holding an older rejected version gets the newer token', async () => {
    const s = source(300);
    const holder = renewingTokenSource(s.src, s.clock);
    await holder.get();
    const [a, b] = await Promise.all([
      holder.get({ rejectedTokenVersion: 1 }),
      holder.get({ rejectedTokenVersion: 1 }),
    ]);
    assert.equal(a.tokenVersion, 2);
    assert.equal(b.tokenVersion, 2);
    assert.deepEqual(s.calls, [undefined, { rejectedTokenVersion: 1 }]);
    assert.equal(
      (await holder.get({ rejectedTokenVersion: 1 })).tokenVersion,
      2,
      'late 401 of version 1: no new request',
    );
    assert.equal(s.calls.length, 2);
  });
  test('a token without a known expiry (a test source) is kept until Sage rejects it', async () => {
    let n = 0;
    const holder = renewingTokenSource(
      { get: async () => ({ accessToken: 'x', tokenVersion: ++n }) },
      () => T0 + 10 ** 12,
    );
    await holder.get();
    await holder.get();
    assert.equal(n, 1);
  });
});
