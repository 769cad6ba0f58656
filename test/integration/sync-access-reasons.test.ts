/**
 * 401s and 403s mean what Sage means, on the real path (connection workflow → acquireAccessToken → syncCustomers →
 * FerretDB, simulator over HTTP): a lapsed Sage Accounting subscription and a Sage 200 site removed from the user's
 * reach each fail THAT partition with its reason (sync_runs, status.lastSync, metric) while the other partition
 * succeeds; at most one refresh at the simulator and no reused refresh token; the connection stays connected; the
 * reason clears on the next good run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { syncAccessDenied } from '../../src/lib/metrics.js';
import { connectionWorkflowId, statusQuery, type Provider } from '../../src/messages.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import type { CustomerDoc } from '../../src/sync/documents.js';
import { syncCustomers } from '../../src/workflows/index.js';
import { connectTenant, waitForStatus } from '../helpers/consent.js';
import { testStack, uniqueName, type TestStack } from '../helpers/env.js';

let sim: RunningSimulator;
let stack: TestStack;
before(async () => {
  sim = await startSimulator({ usersPerProvider: 0, customersPerPartition: 0 });
  stack = await testStack({ ...sim.env, SAGE_ACCOUNTING_PAGE_SIZE: '20', SAGE200_PAGE_SIZE: '20' });
  await stack.startWorker();
});
after(async () => {
  await stack?.close();
  await sim?.close();
});

async function deniedCount(provider: Provider, reason: string): Promise<number> {
  const m = await syncAccessDenied.get();
  return m.values.find((v) => v.labels.provider === provider && v.labels.reason === reason)?.value ?? 0;
}

/** Runs syncCustomers once by hand; a partition failure makes the run fail (SyncFailed), which is expected here. */
async function runSync(tenantId: string, provider: Provider): Promise<{ workflowId: string; failed: boolean }> {
  const workflowId = uniqueName(`sync-${provider}-${tenantId}`);
  try {
    await stack.client.workflow.execute(syncCustomers, {
      workflowId,
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ tenantId, provider }],
    });
    return { workflowId, failed: false };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    return { workflowId, failed: true };
  }
}

const cases = [
  {
    provider: 'sage-accounting' as const,
    reason: 'subscription_inactive',
    text: /subscription/,
    cut: (userId: string, partitionId: string) =>
      sim.admin.subscription({ businessId: partitionId, active: false }) && userId,
    restore: (userId: string, partitionId: string) =>
      sim.admin.subscription({ businessId: partitionId, active: true }) && userId,
  },
  {
    provider: 'sage-200' as const,
    reason: 'site_access_denied',
    text: /site/,
    cut: (userId: string, partitionId: string) =>
      sim.admin.siteAccess({ userId, companyId: partitionId, reachable: false }),
    restore: (userId: string, partitionId: string) =>
      sim.admin.siteAccess({ userId, companyId: partitionId, reachable: true }),
  },
];

for (const c of cases) {
  describe(c.provider, () => {
    test(`${c.reason} fails only that partition, with its reason everywhere; ≤ 1 refresh, 0 reused refresh tokens; clears on the next good run`, async () => {
      const tenantId = uniqueName('acc').replace(/_/g, '-');
      const user = sim.admin.createUser({ provider: c.provider, partitions: 2, customersPerPartition: 30 });
      const status = await connectTenant(
        { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` },
        { tenantId, provider: c.provider, userId: user.id },
      );
      const wfId = connectionWorkflowId(c.provider, tenantId);
      // The schedule's immediate first sync: let it finish so our runs are the only ones.
      await waitForStatus(
        stack.client,
        wfId,
        (s) => status.partitions.every((p) => s.lastSync[p.id]?.status === 'succeeded'),
        120_000,
      );
      const [bad, good] = status.partitions.map((p) => p.id) as [string, string];

      c.cut(user.id, bad);
      const before = sim.admin.counters().byProvider[c.provider];
      const metricBefore = await deniedCount(c.provider, c.reason);
      const run = await runSync(tenantId, c.provider);
      assert.equal(run.failed, true, 'a failed partition makes the run fail (visible in Temporal)');
      const after = sim.admin.counters().byProvider[c.provider];
      // Sage Accounting names the cause in its 401 body: no refresh at all. Sage 200's empty 401 is worth exactly one.
      assert.equal(
        after.refreshes - before.refreshes,
        c.provider === 'sage-accounting' ? 0 : 1,
        `${after.refreshes - before.refreshes} refreshes at the simulator`,
      );
      assert.equal(sim.admin.counters().reusedRefreshTokens, 0, 'no refresh token used twice');

      const runs = await stack.mongo
        .collection(COLLECTIONS.syncRuns)
        .find({ syncWorkflowId: run.workflowId })
        .toArray();
      const badRun = runs.find((r) => r.partitionId === bad);
      const goodRun = runs.find((r) => r.partitionId === good);
      assert.equal(badRun?.status, 'failed');
      assert.equal(badRun?.reason, c.reason);
      assert.match(String(badRun?.error), c.text);
      assert.equal(goodRun?.status, 'succeeded', 'the other partition went on');

      const s = await stack.client.workflow.getHandle(wfId).query(statusQuery);
      assert.equal(s.state, 'connected', 'the grant is fine: the connection stays connected');
      const lastBad = await waitForStatus(stack.client, wfId, (x) => x.lastSync[bad]?.reason === c.reason);
      assert.equal(lastBad.lastSync[bad]?.status, 'failed');
      assert.match(String(lastBad.lastSync[bad]?.error), c.text);
      assert.equal(lastBad.lastSync[good]?.status, 'succeeded');
      assert.equal(
        await deniedCount(c.provider, c.reason),
        metricBefore + 1,
        'counted in sage_sync_access_denied_total',
      );

      c.restore(user.id, bad);
      const again = await runSync(tenantId, c.provider);
      assert.equal(again.failed, false);
      const cleared = await waitForStatus(stack.client, wfId, (x) => x.lastSync[bad]?.status === 'succeeded');
      assert.equal(cleared.lastSync[bad]?.reason, undefined, 'the reason clears on the next good run');
      assert.equal(cleared.state, 'connected');
      const docs = await stack.mongo
        .collection<CustomerDoc>(COLLECTIONS.customers)
        .find({ tenantId, partitionId: bad })
        .toArray();
      assert.equal(docs.length, 30);
      assert.equal(sim.admin.counters().reusedRefreshTokens, 0);
    });
  });
}
