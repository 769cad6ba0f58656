/**
 * The change sequence across a worker SIGKILLed mid-run (issue 15): a downstream reader polls `changeSeq` in
 * (cursor, horizon] the whole time, keeping its cursor across the crash. The retried attempt replaces the dead one's
 * reservation and re-reads the page that was in flight; no number is used twice, and the reader ends up with every
 * change (nothing was committed below a horizon it had already passed). Two partitions, so one partition's reader
 * horizon moves while the other is still being written. Production worker entry as child processes; real Temporal,
 * FerretDB; tokens through the real connection workflow.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import type { CustomersChangedEvent } from '../../src/sync/announce.js';
import { readCounter, readHorizon } from '../../src/sync/change-seq.js';
import { syncRunId, type CustomerDoc } from '../../src/sync/documents.js';
import { startChangeReader } from '../helpers/change-reader.js';
import { faultSuiteStack } from '../helpers/fault-stack.js';

const suite = faultSuiteStack({ webhook: true });

test('SIGKILL mid-run: no changeSeq reused, and a reader that kept its cursor across the crash misses no change', async (t) => {
  const { sim, stack, hook } = suite;
  const { env, first, provider, tenantId, userId, partitionIds } = await suite.startKillTest({
    prefix: 'chkill',
    partitions: 2,
  });
  const conn = { tenantId, provider };
  const [pa, pb] = partitionIds as [string, string];
  // A: 300 new customers, slow pages (the kill lands mid-run); B: 40, fast (its horizon moves while A is written).
  sim.admin.mutate({ provider, partitionId: pa, userId, create: 300 });
  sim.admin.mutate({ provider, partitionId: pb, userId, create: 40 });
  sim.admin.addFaults({ provider, scope: 'api', pathIncludes: '/customers', kind: 'latency', latencyMs: 150 });
  try {
    // The reader: polls (cursor, horizon] and advances its cursor to the horizon, as the README tells readers to.
    const customers = stack.mongo.collection<CustomerDoc>(COLLECTIONS.customers);
    const reader = await startChangeReader(stack.mongo, conn);
    const { seen, horizons } = reader;

    const { workflowId, handle } = await suite.startSync('sync-chkill', { tenantId, provider });
    const runs = stack.mongo.collection(COLLECTIONS.syncRuns);
    const pagesAtKill = await suite.pagesWritten(workflowId, pa, 4);
    assert.ok(pagesAtKill >= 4, 'the sync got going');
    const horizonAtKill = await readHorizon(stack.mongo.db, conn);
    first.kill('SIGKILL');
    await first.exited;
    const counterAtKill = await readCounter(stack.mongo.db, conn);

    const second = suite.spawnWorker(env);
    await second.ready;
    const result = await handle.result();
    assert.equal(result.status, 'succeeded');
    const run = await runs.findOne({ _id: syncRunId(workflowId, pa) } as never);
    assert.ok((run?.attempt as number) >= 2, 'partition A was retried on the new worker');
    sim.admin.clearFaults();
    await reader.stop();

    const docs = await customers.find({ tenantId, provider }).toArray();
    assert.equal(docs.length, 340);
    const seqs = docs.map((d) => d.changeSeq!);
    assert.equal(new Set(seqs).size, seqs.length, 'no changeSeq used twice');
    assert.ok(horizonAtKill < counterAtKill, 'the reader horizon was held back while A was being written');
    const retried = docs.filter((d) => d.partitionId === pa && d.changeSeq! > counterAtKill).length;
    t.diagnostic(
      `killed after ${pagesAtKill} pages of A; horizon at kill ${horizonAtKill}, counter ${counterAtKill}; ${retried} of A's customers stamped by the retry`,
    );
    assert.ok(
      retried > 0 && retried < 300,
      'the retry stamped the rest with fresh numbers above every number handed out before the crash',
    );

    // The reader kept its cursor across the crash and still has every customer, with its final number.
    const missing = docs.filter((d) => seen.get(d._id) !== d.changeSeq).map((d) => d._id);
    assert.deepEqual(missing.slice(0, 5), [], `${missing.length} changes missed by the polling reader`);
    assert.ok(
      horizons.every((x, i) => i === 0 || x >= horizons[i - 1]!),
      'the horizon never went backwards',
    );

    // The run's event covers the same changes (counts may miss the page that was in flight; its range does not).
    let event: CustomersChangedEvent | undefined;
    for (const deadline = Date.now() + 60_000; !event && Date.now() < deadline; await sleep(100)) {
      event = hook.received
        .map((r) => JSON.parse(r.body) as CustomersChangedEvent)
        .find((e) => e.type === 'customers.changed' && e.runId === workflowId);
    }
    assert.ok(event, 'customers.changed for the run');
    assert.ok(
      seqs.every((s) => s <= event.toSeq),
      'toSeq covers every change',
    );
    const inRange = docs.filter((d) => d.changeSeq! >= event.fromSeq);
    assert.equal(inRange.length, 340, 'every customer of this run is in (fromSeq - 1, toSeq]');
    assert.equal(event.partitions[pb]!.created, 40);

    await suite.disconnect(provider, tenantId);
  } finally {
    // The latency rule is cleared above, right after the retry; this clears it only if the test failed before that.
    sim.admin.clearFaults();
  }
});
