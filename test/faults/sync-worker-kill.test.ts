/**
 * A worker SIGKILLed in the middle of a full sync: another worker resumes the partition at its last checkpoint (the
 * page after the last one written to `sync_runs` / the heartbeat), re-reading at most 2 pages, and the result is
 * exactly Sage's truth, nothing lost or duplicated. Production worker entry as child processes; real Temporal, FerretDB;
 * tokens through the real connection workflow.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { syncRunId, type CustomerDoc } from '../../src/sync/documents.js';
import { faultSuiteStack } from '../helpers/fault-stack.js';
import { withFaults } from '../helpers/faults.js';

const suite = faultSuiteStack();

test('SIGKILL mid-sync: the retry resumes from the checkpoint (≤ 2 pages re-read), nothing lost or duplicated', async (t) => {
  const { sim, stack } = suite;
  // Sage 200. The schedule's first (full) run starts right after consent: let it finish on the still-empty partition,
  // then give Sage 400 new customers for the measured run to fetch and write.
  const { env, first, provider, tenantId, userId, partitionIds } = await suite.startKillTest({
    prefix: 'kill',
    partitions: 1,
  });
  const partitionId = partitionIds[0]!;
  sim.admin.mutate({ provider, partitionId, userId, create: 400 });
  // Slow pages down so the kill lands mid-run.
  await withFaults(
    sim.admin,
    { provider, scope: 'api', pathIncludes: '/customers', kind: 'latency', latencyMs: 150 },
    async () => {
      sim.admin.resetCounters();

      const { workflowId, handle } = await suite.startSync('sync-kill', { tenantId, provider });
      const runs = stack.mongo.collection(COLLECTIONS.syncRuns);
      const pagesAtKill = await suite.pagesWritten(workflowId, partitionId, 5);
      assert.ok(pagesAtKill >= 5, 'the sync got going');
      first.kill('SIGKILL');
      await first.exited;

      const second = suite.spawnWorker(env);
      await second.ready;
      const result = await handle.result();
      assert.equal(result.status, 'succeeded');
      const summary = result.partitions[partitionId]!;
      assert.equal(summary.fetched, 400, 'counts carried over from the checkpoint, no page counted twice');
      assert.equal(summary.upserted, 400);

      const run = await runs.findOne({ _id: syncRunId(workflowId, partitionId) } as never);
      assert.equal(run?.status, 'succeeded');
      assert.ok((run?.attempt as number) >= 2, 'the partition activity was retried on the new worker');
      const pages = run?.pages as number;
      const requested = Object.entries(sim.admin.counters().requestsByPath)
        .filter(([p]) => p.endsWith('/customers'))
        .reduce((n, [, c]) => n + c, 0);
      t.diagnostic(
        `killed after ${pagesAtKill} pages; ${pages} pages in all; ${requested} page requests (${requested - pages} re-read)`,
      );
      assert.ok(
        requested - pages <= 2,
        `re-read ${requested - pages} pages (requested ${requested}, pages ${pages}, killed at ${pagesAtKill})`,
      );

      const truth = sim.admin.truth(provider, partitionId, userId).customers;
      const docs = await stack.mongo
        .collection<CustomerDoc>(COLLECTIONS.customers)
        .find({ tenantId, partitionId })
        .toArray();
      assert.equal(docs.length, truth.length, 'no duplicates');
      assert.deepEqual(docs.map((d) => d.externalId).sort(), truth.map((c) => c.id).sort(), 'nothing lost');
    },
  );
});
