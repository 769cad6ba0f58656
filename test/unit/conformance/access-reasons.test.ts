/**
 * What a persistent Sage 200 401 means, as the source explains it after a fresh token did not help: a wrong edition
 * (every call refused, even `/sites`) is reported as `edition_mismatch`, a lost site as `site_access_denied` — never as a
 * token problem. In-process simulator over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { accessProblem, SageAccessDeniedError, SageApiError } from '../../../src/errors.js';
import { createSageHttp } from '../../../src/providers/http.js';
import { createSage200Source } from '../../../src/providers/sage200/customers.js';
import { startSimulator, type RunningSimulator } from '../../../src/simulator/server.js';
import { succeededSummary } from '../../helpers/summaries.js';

let sim: RunningSimulator;
before(async () => {
  sim = await startSimulator({ seed: 3, customersPerPartition: 5 });
});
after(async () => sim.close());

function setup(edition: 'sage200' | 'sage200extra') {
  const user = sim.admin.createUser({ provider: 'sage-200', edition, partitions: 2 });
  const grant = sim.admin.mintGrant({ provider: 'sage-200', userId: user.id });
  const p = user.partitions[0] as { partitionId: string; siteId: string; name: string };
  const source = createSage200Source(createSageHttp({ maxConcurrency: 2, retries: 0 }), {
    SAGE200_API_URL: sim.env.SAGE200_API_URL!,
    SAGE200_SUBSCRIPTION_KEY: sim.env.SAGE200_SUBSCRIPTION_KEY,
  });
  const ctx = {
    tenantId: 't',
    provider: 'sage-200' as const,
    partition: { id: p.partitionId, name: p.name, siteId: p.siteId },
    accessToken: grant.token.access_token as string,
  };
  return { user, source, ctx };
}

describe('Sage 200 401 explained', () => {
  it('a Standard (sage200) tenant synced under sage200extra → edition_mismatch naming the other edition', async () => {
    const { source, ctx } = setup('sage200');
    await assert.rejects(
      source.fetchPage({ ...ctx, edition: 'sage200extra' }, source.startCursor('full', null), { pageSize: 5 }),
      (e: SageApiError) => e.status === 401,
    );
    const why = await source.explainUnauthorized!({ ...ctx, edition: 'sage200extra' });
    assert.ok(why instanceof SageAccessDeniedError);
    assert.equal(why.reason, 'edition_mismatch');
    assert.match(why.message, /sage200\b/);
    // At connect time the connection test reads /sites: its error names the edition, not just "401".
    const { listSage200Sites } = await import('../../../src/providers/sage200/partitions.js');
    await assert.rejects(
      listSage200Sites(
        createSageHttp({ maxConcurrency: 1, retries: 0 }),
        { SAGE200_API_URL: sim.env.SAGE200_API_URL!, SAGE200_SUBSCRIPTION_KEY: sim.env.SAGE200_SUBSCRIPTION_KEY },
        ctx.accessToken,
        'sage200extra',
      ),
      (e: Error) => e instanceof SageApiError && /edition sage200extra.*other edition, sage200\b/.test(e.message),
    );
    // The right edition works with the same token: it was never the token.
    const page = await source.fetchPage({ ...ctx, edition: 'sage200' }, source.startCursor('full', null), {
      pageSize: 5,
    });
    assert.ok(page.records.length > 0);
  });

  it('a site removed from the user → site_access_denied', async () => {
    const { user, source, ctx } = setup('sage200extra');
    sim.admin.siteAccess({ userId: user.id, companyId: ctx.partition.id, reachable: false });
    const why = await source.explainUnauthorized!({ ...ctx, edition: 'sage200extra' });
    assert.equal(why.reason, 'site_access_denied');
    assert.match(why.message, /site/);
  });

  it('a Sage Accounting 403 (no access to that business) → business_access_denied', () => {
    const body = JSON.stringify([
      {
        $severity: 'error',
        $dataCode: 'BusinessAccessDenied',
        $message: 'The current user does not have access to the requested business.',
        $source: 'X-Business',
      },
    ]);
    assert.equal(
      accessProblem(new SageApiError('sage-accounting', 403, '/v3.1/contacts', body))?.reason,
      'business_access_denied',
    );
  });
});

describe('the reason reaches the operator', () => {
  it('sage-sync status shows a refused partition as "failed (<reason>)"', async () => {
    const { connectionDetails } = await import('../../../src/cli/format.js');
    const summary = succeededSummary({
      finishedAt: '2026-12-01T21:00:00.000Z',
      mode: 'incremental',
      fetched: 0,
      upserted: 0,
    });
    const out = connectionDetails({
      workflowId: 'w',
      tenantId: 't',
      provider: 'sage-accounting',
      state: 'connected',
      reason: null,
      authorizationUrl: null,
      tokenVersion: 1,
      accessTokenExpiresAt: null,
      refreshTokenExpiresAt: null,
      lastRefreshAt: null,
      refreshCount: 0,
      partitions: [
        { id: 'b1', name: 'One' },
        { id: 'b2', name: 'Two' },
      ],
      lastSync: {
        b1: {
          ...summary,
          status: 'failed',
          reason: 'subscription_inactive',
          error: 'subscription_inactive: no active subscription',
        },
        b2: { ...summary, status: 'succeeded' },
      },
      lastSyncAt: null,
      updatedAt: null,
      source: 'workflow',
      customers: null,
    });
    assert.match(out, /failed \(subscription_inactive\)/);
    assert.doesNotMatch(out, /succeeded \(/);
  });
});
