/**
 * A worker SIGKILLed while a Sage Accounting full sync has pages in flight AHEAD of its write point
 * (`SAGE_PAGE_CONCURRENCY` > 1, `src/sync/read-ahead.ts`), with Sage changing between the kill and the resume.
 * Production worker entry as child processes; real Temporal, FerretDB, the simulator over HTTP with page latency;
 * tokens through the real connection workflow. Two forms: a second worker started after the kill, and two workers on
 * the task queue the whole time (the one running the partition is the one killed).
 *
 * Asserted, counted at the simulator and in MongoDB:
 * - the kill landed with ≥ 2 customer pages in flight at Sage beyond the last checkpoint;
 * - the retry resumed from the checkpoint: list pages requested − pages written ≤ SAGE_PAGE_CONCURRENCY + 1;
 * - after the resumed run: no live Sage customer missing or flagged deleted (the ones a mid-run delete shifts past the
 *   resume point are confirmed by GET, not flagged), customers deleted at Sage after the kill in the part not yet
 *   written are flagged, updates there are stored; after the next incremental run MongoDB equals Sage's truth exactly
 *   (also the updates/deletes of pages written before the kill);
 * - every `changeSeq` of the tenant unique; a reader polling `(cursor, horizon]` across the crash (cursor kept) has
 *   every change with its final number, and the horizon never went backwards.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { readCounter, readHorizon } from '../../src/sync/change-seq.js';
import { syncRunId, type CustomerDoc } from '../../src/sync/documents.js';
import { syncCustomers } from '../../src/workflows/index.js';
import { startChangeReader } from '../helpers/change-reader.js';
import { uniqueName } from '../helpers/env.js';
import { faultSuiteStack, KILL_TEST_HEARTBEAT_TIMEOUT_SECONDS } from '../helpers/fault-stack.js';
import { compareWithTruth, describeReport, size } from '../helpers/faults.js';

const provider = 'sage-accounting' as const;
const PAGE = 20;
const WINDOW = 4; // SAGE_PAGE_CONCURRENCY
const INITIAL = size(200, 2_000); // stored by the connection's first (full) sync
const CREATED = size(40, 400); // new at Sage before the measured run
const UPDATED = size(80, 800); // changed at Sage before the measured run
const LATENCY_MS = size(700, 900);

const suite = faultSuiteStack();

const listPages = () =>
  Object.entries(suite.sim.admin.counters().requestsByPath)
    .filter(([p]) => p.startsWith('/sage-accounting/') && p.endsWith('/contacts'))
    .reduce((n, [, c]) => n + c, 0);
/** `GET /contacts/{id}`: how a full run confirms an unseen customer before flagging it deleted. */
const singleGets = () =>
  Object.entries(suite.sim.admin.counters().requestsByPath)
    .filter(([p]) => /\/sage-accounting\/.*\/contacts\/[^/]+$/.test(p))
    .reduce((n, [, c]) => n + c, 0);

async function scenario(t: { diagnostic(msg: string): void }, opts: { twoWorkersAllAlong: boolean }) {
  const { sim, stack } = suite;
  const env = suite.workerEnv({
    SAGE_ACCOUNTING_PAGE_SIZE: String(PAGE),
    SAGE_PAGE_CONCURRENCY: String(WINDOW),
    SYNC_HEARTBEAT_TIMEOUT_SECONDS: KILL_TEST_HEARTBEAT_TIMEOUT_SECONDS,
    WORKER_STICKY_QUEUE_TIMEOUT_SECONDS: '2',
  });
  const running = [suite.spawnWorker(env), ...(opts.twoWorkersAllAlong ? [suite.spawnWorker(env)] : [])];
  await Promise.all(running.map((w) => w.ready));

  const { tenantId, userId, partitionIds } = await suite.connectSynced(provider, {
    prefix: 'rakill',
    partitions: 1,
    customersPerPartition: INITIAL,
    timeoutMs: 120_000,
  });
  const conn = { tenantId, provider };
  const partitionId = partitionIds[0]!;
  const truth = () => sim.admin.truth(provider, partitionId, userId).customers;
  assert.equal(truth().length, INITIAL);
  // Changes for the measured run to write (and stamp): new customers at the end of the listing, updates anywhere.
  sim.admin.mutate({ provider, partitionId, userId, create: CREATED, update: UPDATED });
  const faults = sim.admin.addFaults({
    provider,
    scope: 'api',
    pathIncludes: '/contacts',
    kind: 'latency',
    latencyMs: LATENCY_MS,
  });
  try {
    sim.admin.resetCounters();

    // The downstream reader: polls (cursor, horizon] and moves its cursor to the horizon, keeping it across the crash.
    const customers = stack.mongo.collection<CustomerDoc>(COLLECTIONS.customers);
    const reader = await startChangeReader(stack.mongo, conn);
    const { cursorAtStart, seen, horizons } = reader;

    const { workflowId, handle } = await suite.startSync('sync-rakill', { tenantId, provider, mode: 'full' });
    const runs = stack.mongo.collection(COLLECTIONS.syncRuns);
    const runId = syncRunId(workflowId, partitionId);

    // Aim: at least 3 pages checkpointed and ≥ 2 pages being answered at Sage (fetched ahead of the write point).
    let inFlightAtKill = 0;
    let pagesSeen = 0;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(20)) {
      const run = await runs.findOne({ _id: runId } as never);
      pagesSeen = (run?.pages as number | undefined) ?? 0;
      inFlightAtKill = sim.admin.counters().customerPagesInFlight;
      if (pagesSeen >= 3 && inFlightAtKill >= 2) break;
    }
    assert.ok(
      pagesSeen >= 3 && inFlightAtKill >= 2,
      `aimed kill: ${pagesSeen} pages written, ${inFlightAtKill} in flight`,
    );
    // The worker running the partition activity (with two workers either may have it).
    const desc = await handle.describe();
    const identity = desc.raw.pendingActivities?.[0]?.lastWorkerIdentity ?? '';
    const victim = running.find((w) => identity.startsWith(`${w.child.pid}@`));
    assert.ok(victim, `the partition runs on one of our workers (identity ${identity})`);
    const horizonAtKill = await readHorizon(stack.mongo.db, conn);
    victim.kill('SIGKILL');
    await victim.exited;
    const counterAtKill = await readCounter(stack.mongo.db, conn);
    const requestedAtKill = listPages();
    const killedRun = await runs.findOne({ _id: runId } as never);
    const pagesAtKill = killedRun?.pages as number;
    assert.ok(
      requestedAtKill - pagesAtKill >= 2,
      `pages requested beyond the checkpoint at the kill: ${requestedAtKill} requested, ${pagesAtKill} written`,
    );

    // Sage changes while no worker runs the partition: updates and deletes before the write point (pages written) and
    // after it (pages not yet written). Listing order is creation order, as `truth` lists them.
    const live = truth().filter((c) => !c.deleted);
    const writtenPart = live.slice(0, pagesAtKill * PAGE);
    const laterPart = live.slice((pagesAtKill + 2) * PAGE);
    assert.ok(
      writtenPart.length >= 3 * PAGE && laterPart.length >= 3 * PAGE,
      `kill at page ${pagesAtKill} leaves both parts`,
    );
    const pick = (list: typeof live, n: number, from: number) =>
      Array.from({ length: n }, (_, i) => list[Math.floor(((i + from) * list.length) / 8)]!.id);
    const del = { written: pick(writtenPart, 3, 0), later: pick(laterPart, 3, 0) };
    const upd = { written: pick(writtenPart, 3, 4), later: pick(laterPart, 3, 4) };
    sim.admin.mutate({
      provider,
      partitionId,
      userId,
      update: [...upd.written, ...upd.later],
      delete: [...del.written, ...del.later],
    });

    if (!opts.twoWorkersAllAlong) {
      const second = suite.spawnWorker(env);
      running.push(second);
      await second.ready;
    }
    const result = await handle.result();
    assert.equal(result.status, 'succeeded');
    const run = await runs.findOne({ _id: runId } as never);
    assert.equal(run?.status, 'succeeded');
    assert.ok((run?.attempt as number) >= 2, 'the partition activity was retried');
    const requested = listPages();
    const written = run?.pages as number;
    const reRead = requested - written;
    const attempts = run?.attempt as number;
    const expectedPages = Math.ceil(truth().filter((c) => !c.deleted).length / PAGE);
    t.diagnostic(
      `killed at ${pagesAtKill} pages written, ${inFlightAtKill} in flight at Sage, ${requestedAtKill} requested; after: ${written} pages written, ${requested} requested (${reRead} re-read, window ${WINDOW}), ${attempts} attempts, ${singleGets()} single GETs; high-water ${sim.admin.counters().customerPagesHighWater}`,
    );
    assert.equal(written, expectedPages, 'every page of the listing written once (the checkpoint count carried over)');
    // One retry: a third attempt means a live attempt was timed out and ran beside its retry (both reading pages), which
    // the heartbeat slack (KILL_TEST_HEARTBEAT_TIMEOUT_SECONDS) is there to prevent; name it rather than report it as a re-read count.
    assert.equal(attempts, 2, 'exactly one retry (the killed attempt), no live attempt timed out');
    assert.ok(reRead <= WINDOW + 1, `resumed from the checkpoint: ${reRead} pages re-read (≤ ${WINDOW + 1})`);
    assert.ok(reRead >= 1, 'the page(s) in flight at the kill were read again');
    // The deletes before the resume point shift as many customers back past it: unseen by the run, confirmed by GET.
    assert.ok(singleGets() >= del.written.length, `${singleGets()} unseen customers confirmed by GET before flagging`);

    // After the resumed full run: nothing live lost or flagged deleted; what changed in the unwritten part is in.
    const byId = async () =>
      new Map((await customers.find({ tenantId, provider, partitionId }).toArray()).map((d) => [d.externalId, d]));
    const report = await compareWithTruth(stack.mongo, { tenantId, provider, partitionId }, truth(), {
      checkDeletions: true,
    });
    t.diagnostic(`after the resumed run: ${describeReport(report)}`);
    assert.deepEqual(report.lost, [], 'no live Sage customer missing or flagged deleted');
    assert.deepEqual(report.duplicated, []);
    assert.deepEqual(
      report.extra.sort(),
      [...del.written].sort(),
      'only customers deleted in pages already written are still live (the next run flags them)',
    );
    const docs1 = await byId();
    const truthById = new Map(truth().map((c) => [c.id, c]));
    for (const id of del.later)
      assert.equal(docs1.get(id)?.deleted, true, `${id} deleted at Sage after the kill, not yet written: flagged`);
    for (const id of upd.later)
      assert.equal(
        docs1.get(id)?.sourceUpdatedAt.getTime(),
        Date.parse(truthById.get(id)!.updated_at),
        `${id} updated after the kill: stored`,
      );

    // The next incremental run brings what changed in the pages written before the kill; then MongoDB equals Sage.
    sim.admin.clearFaults(faults.rules[0]!.id);
    const inc = await stack.client.workflow.execute(syncCustomers, {
      workflowId: uniqueName('sync-rakill-inc'),
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ tenantId, provider }],
    });
    assert.equal(inc.status, 'succeeded');
    const final = await compareWithTruth(stack.mongo, { tenantId, provider, partitionId }, truth(), {
      checkDeletions: true,
    });
    assert.deepEqual(
      { lost: final.lost, duplicated: final.duplicated, extra: final.extra },
      { lost: [], duplicated: [], extra: [] },
      describeReport(final),
    );
    const docs2 = await byId();
    const liveTruth = truth().filter((c) => !c.deleted);
    assert.equal([...docs2.values()].filter((d) => !d.deleted).length, liveTruth.length, 'live customers equal Sage');
    for (const c of liveTruth)
      assert.equal(
        docs2.get(c.id)?.sourceUpdatedAt.getTime(),
        Date.parse(c.updated_at),
        `${c.id} is Sage's latest version`,
      );
    for (const id of [...del.written, ...del.later])
      assert.equal(docs2.get(id)?.deleted, true, `${id} flagged deleted`);

    // The change sequence across the crash.
    await reader.stop();
    const all = [...docs2.values()];
    const seqs = all.map((d) => d.changeSeq!).filter((s) => s !== undefined && s !== null);
    assert.equal(new Set(seqs).size, seqs.length, 'no changeSeq used twice');
    assert.ok(horizonAtKill < counterAtKill, 'the horizon was held back while the partition was being written');
    const changed = all.filter((d) => d.changeSeq! > cursorAtStart);
    assert.ok(changed.length >= CREATED + UPDATED, `${changed.length} changes in the two runs`);
    const missed = changed.filter((d) => seen.get(d._id) !== d.changeSeq).map((d) => d._id);
    assert.deepEqual(
      missed.slice(0, 5),
      [],
      `${missed.length} changes missed by the reader that kept its cursor across the crash`,
    );
    assert.ok(
      horizons.every((x, i) => i === 0 || x >= horizons[i - 1]!),
      'the horizon never went backwards',
    );
    t.diagnostic(
      `changeSeq: cursor ${cursorAtStart} → ${reader.cursor}, horizon at kill ${horizonAtKill}, counter ${counterAtKill}, ${changed.length} changes read across the crash`,
    );

    await suite.disconnect(provider, tenantId);
    for (const w of running) w.kill('SIGKILL');
    await Promise.all(running.map((w) => w.exited));
  } finally {
    // The latency rule is cleared above, before the incremental run; this clears it only if the scenario failed before
    // that (so the file's next test does not inherit it).
    sim.admin.clearFaults(faults.rules[0]!.id);
  }
}

test('Sage Accounting read-ahead: SIGKILL with pages in flight beyond the checkpoint, a second worker resumes; Sage changes meanwhile', async (t) => {
  await scenario(t, { twoWorkersAllAlong: false });
});

test('Sage Accounting read-ahead: two workers on the queue the whole time, the one running the partition is SIGKILLed', async (t) => {
  await scenario(t, { twoWorkersAllAlong: true });
});
