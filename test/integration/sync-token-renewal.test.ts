/**
 * A sync run renews its token ahead of the known expiry instead of waiting for Sage's 401 (issue 14). Simulator over
 * HTTP with short-lived access tokens and per-page latency, so one run outlives several tokens; 401s counted at the
 * simulator. Real FerretDB; the token source is a plain one minting simulator grants (the workflow's part is covered
 * by the token tests).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSageHttp } from '../../src/providers/http.js';
import { customerSourceFor } from '../../src/providers/index.js';
import { syncPartition } from '../../src/sync/partition-sync.js';
import type { AccessToken } from '../../src/sync/tokens.js';
import { uniqueName } from '../helpers/env.js';
import { syncHarness, type SyncHarness } from '../helpers/sync-harness.js';

let h: SyncHarness;
before(async () => {
  h = await syncHarness({ SAGE_ACCOUNTING_PAGE_SIZE: '5' });
});
after(async () => h?.close());

test('a run longer than its 6-s token renews ahead of expiry: 0 401s at Sage, every page fetched', async () => {
  const TTL = 6;
  h.sim.admin.settings({ sageAccounting: { accessTokenTtlSeconds: TTL } });
  try {
    const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 100 });
    const p = t.partitions[0]!;
    // 20 pages × 400 ms ≈ 8 s: longer than one token.
    h.sim.admin.addFaults({
      provider: 'sage-accounting',
      scope: 'api',
      pathIncludes: '/contacts',
      kind: 'latency',
      latencyMs: 400,
    });
    let version = 0;
    const issued: AccessToken[] = [];
    const tokens = {
      async get(): Promise<AccessToken> {
        const grant = h.sim.admin.mintGrant({ provider: 'sage-accounting', userId: t.userId }).token as {
          access_token: string;
          expires_in: number;
        };
        const tok = {
          accessToken: grant.access_token,
          tokenVersion: ++version,
          expiresAt: new Date(Date.now() + grant.expires_in * 1000).toISOString(),
          lifetimeSec: grant.expires_in,
        };
        issued.push(tok);
        return tok;
      },
    };
    const unauthorizedBefore = h.sim.admin.counters().byProvider['sage-accounting'].apiUnauthorized;
    const started = Date.now();
    const res = await syncPartition(
      {
        mongo: h.stack.mongo,
        source: customerSourceFor('sage-accounting', createSageHttp({ maxConcurrency: 4 }), h.stack.config),
        tokens,
        pageSize: 5,
        overlapSeconds: 300,
      },
      {
        target: { tenantId: t.tenantId, provider: 'sage-accounting', partition: p },
        mode: 'full',
        syncWorkflowId: uniqueName('renew'),
      },
    );
    const secs = (Date.now() - started) / 1000;
    assert.equal(res.summary.status, 'succeeded');
    assert.equal(res.summary.fetched, 100);
    assert.ok(secs > TTL, `the run (${secs.toFixed(1)} s) outlived one token`);
    assert.equal(
      h.sim.admin.counters().byProvider['sage-accounting'].apiUnauthorized - unauthorizedBefore,
      0,
      'no request went out with an expired token',
    );
    assert.ok(issued.length >= 2, `renewed ahead of expiry (${issued.length} tokens)`);
    // Not one token per page either: a token is kept while it is outside the margin.
    assert.ok(issued.length <= Math.ceil(secs / (TTL * 0.75)) + 1, `${issued.length} tokens in ${secs.toFixed(1)} s`);
  } finally {
    h.sim.admin.clearFaults();
    h.sim.admin.settings({ sageAccounting: { accessTokenTtlSeconds: 300 } });
  }
});
