/**
 * A worker SIGKILLed in the middle of a full sync: another worker resumes the partition at its last checkpoint (the
 * page after the last one written to `sync_runs` / the heartbeat), re-reading at most 2 pages, and the result is
 * exactly Sage's truth, nothing lost or duplicated. Production worker entry as child processes; real Temporal, FerretDB;
 * tokens through the real connection workflow.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId } from '../../src/messages.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import { syncRunId, type CustomerDoc } from '../../src/sync/documents.js';
import { syncCustomers } from '../../src/workflows/index.js';
import { connectTenant, waitForStatus } from '../helpers/consent.js';
import { testStack, uniqueName, type TestStack } from '../helpers/env.js';
import { spawnWorker, workerEnvFor, type SpawnedWorker } from '../helpers/spawn-worker.js';

let sim: RunningSimulator;
let stack: TestStack;
const workers: SpawnedWorker[] = [];
before(async () => {
  sim = await startSimulator({ usersPerProvider: 0, customersPerPartition: 0 });
  stack = await testStack(sim.env);
});
after(async () => {
  for (const w of workers) w.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
  await stack?.close();
  await sim?.close();
});

test('SIGKILL mid-sync: the retry resumes from the checkpoint (≤ 2 pages re-read), nothing lost or duplicated', async (t) => {
  const env = workerEnvFor(stack.config, { ...sim.env, SAGE200_PAGE_SIZE: '20', SYNC_HEARTBEAT_TIMEOUT_SECONDS: '3' });
  const first = spawnWorker(env);
  workers.push(first);
  await first.ready;

  const provider = 'sage-200' as const;
  const tenantId = uniqueName('kill').replace(/_/g, '-');
  const user = sim.admin.createUser({ provider, partitions: 1, customersPerPartition: 0 });
  const status = await connectTenant(
    { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` },
    { tenantId, provider, userId: user.id },
  );
  const partitionId = status.partitions[0]!.id;
  // The schedule's first (full) run starts right after consent: let it finish on the still-empty partition, then give
  // Sage 400 new customers for the measured run to fetch and write.
  await waitForStatus(
    stack.client,
    connectionWorkflowId(provider, tenantId),
    (s) => s.lastSync[partitionId]?.status === 'succeeded',
    90_000,
  );
  sim.admin.mutate({ provider, partitionId, userId: user.id, create: 400 });
  // Slow pages down so the kill lands mid-run.
  sim.admin.addFaults({ provider, scope: 'api', pathIncludes: '/customers', kind: 'latency', latencyMs: 150 });
  sim.admin.resetCounters();

  const workflowId = uniqueName('sync-kill');
  const handle = await stack.client.workflow.start(syncCustomers, {
    workflowId,
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId, provider }],
  });
  const runs = stack.mongo.collection(COLLECTIONS.syncRuns);
  let pagesAtKill = 0;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(50)) {
    const run = await runs.findOne({ _id: syncRunId(workflowId, partitionId) } as never);
    pagesAtKill = (run?.pages as number | undefined) ?? 0;
    if (pagesAtKill >= 5) break;
  }
  assert.ok(pagesAtKill >= 5, 'the sync got going');
  first.kill('SIGKILL');
  await first.exited;

  const second = spawnWorker(env);
  workers.push(second);
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

  const truth = sim.admin.truth(provider, partitionId, user.id).customers;
  const docs = await stack.mongo
    .collection<CustomerDoc>(COLLECTIONS.customers)
    .find({ tenantId, partitionId })
    .toArray();
  assert.equal(docs.length, truth.length, 'no duplicates');
  assert.deepEqual(docs.map((d) => d.externalId).sort(), truth.map((c) => c.id).sort(), 'nothing lost');
  sim.admin.clearFaults();
});
