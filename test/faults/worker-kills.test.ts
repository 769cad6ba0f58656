/**
 * Fault suite: the worker process is SIGKILLed (FAULTS=full: 50 times; `npm test`: 5) while a tenant refreshes (45-second
 * access tokens at the simulator, a caller asking getAccessToken every 250 ms) and syncs (syncNow every 2 s, full and
 * incremental, with customers changing at the simulator). A new worker process starts after each kill. Each kill is
 * aimed, and counted only when it really hit its target:
 * - refresh: the worker is started with a refresh crash point (`refresh:before-sage` / `refresh:after-store`, the
 *   windows a client can survive) and a refresh is forced; it counts when the worker died at that point;
 * - consent: a second tenant consents while its connection test (after the code exchange is stored) is held at Sage;
 *   it counts when the worker is killed during it; that consent must still end connected;
 * - sync: it counts when this worker moved a sync run forward and the run was still running at the kill.
 * Then one last full sync runs on a healthy worker and the result is compared with the simulator's ground truth.
 *
 * Asserted (issue 8 targets): 0 reused refresh tokens at the simulator, 0 customers lost, 0 duplicated (and none left
 * live that Sage deleted), 0 stuck workflows, 0 worker crashes other than our kills, the tenant still connected, every
 * kind of kill hit at least once.
 * Sage quirk pinned: Sage Accounting refresh tokens are single-use with no grace period, so any replay after a crash
 * shows up as a reuse at the simulator.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId, statusQuery, syncNowSignal } from '../../src/messages.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { connectTenant } from '../helpers/consent.js';
import { testStack, uniqueName, type TestStack } from '../helpers/env.js';
import { ensureBundle, startFaultWorker, type FaultWorker } from '../helpers/fault-worker.js';
import { compareWithTruth, describeReport, size } from '../helpers/faults.js';

const KILLS = size(5, 50);
type KillKind = 'refresh' | 'consent' | 'sync';
/** Crash points inside the refresh that a client can survive (the window between Sage's answer and the store cannot). */
const REFRESH_CRASH_POINTS = ['refresh:before-sage', 'refresh:after-store'] as const;

/** Which kind each kill aims at: short form sync, refresh, sync, consent, sync; full form 30 / 15 / 5. */
function killPlan(n: number): KillKind[] {
  return Array.from({ length: n }, (_, k) =>
    k % 10 === 3 ? 'consent' : k % 10 === 1 || k % 10 === 5 || k % 10 === 8 ? 'refresh' : 'sync',
  );
}
const CUSTOMERS = size(1_200, 3_000);
const P = 'sage-accounting' as const;

let sim: RunningSimulator;
let stack: TestStack;
let bundle: string;

before(async () => {
  sim = await startSimulator({ usersPerProvider: 0, customersPerPartition: 0 });
  // Short tokens: a refresh every ~15 s of use, so kills land in refreshes as well as in syncs.
  sim.admin.settings({ sageAccounting: { accessTokenTtlSeconds: 45 } });
  stack = await testStack({ ...sim.env, SYNC_HEARTBEAT_TIMEOUT_SECONDS: '5' });
  bundle = await ensureBundle();
});
after(async () => {
  await stack?.close();
  await sim?.close();
});

function workerEnv(): Record<string, string> {
  const c = stack.config;
  return {
    ...sim.env,
    NODE_ENV: 'test',
    TEMPORAL_ADDRESS: c.TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE: c.TEMPORAL_NAMESPACE,
    TEMPORAL_TASK_QUEUE: c.TEMPORAL_TASK_QUEUE,
    MONGODB_URI: c.MONGODB_URI,
    MONGODB_DB: c.MONGODB_DB,
    TOKEN_ENCRYPTION_KEY: c.encryptionKey.key.toString('base64'),
    PUBLIC_BASE_URL: c.PUBLIC_BASE_URL,
    SYNC_HEARTBEAT_TIMEOUT_SECONDS: '5',
  };
}

async function openSyncRuns(): Promise<string[]> {
  const ids: string[] = [];
  for await (const w of stack.client.workflow.list({
    query: `TaskQueue = "${stack.config.TEMPORAL_TASK_QUEUE}" AND WorkflowType = "syncCustomers" AND ExecutionStatus = "Running"`,
  }))
    ids.push(w.workflowId);
  return ids;
}

/** Why each customer deleted at Sage is still live here: its document, its hash entry, Sage's deletion time, the runs. */
async function explainExtras(
  tenantId: string,
  partitionId: string,
  extra: string[],
  truth: { id: string; deleted_at?: string | null }[],
): Promise<string> {
  const lines: string[] = [];
  const state = await stack.mongo.db.collection(COLLECTIONS.syncState).findOne({});
  lines.push(`sync_state: ${JSON.stringify(state)}`);
  for (const id of extra.slice(0, 10)) {
    const doc = await stack.mongo
      .collection(COLLECTIONS.customers)
      .findOne({ tenantId, partitionId, externalId: id }, { projection: { raw: 0 } });
    const hash = doc
      ? await stack.mongo.db.collection(COLLECTIONS.customerHashes).findOne({ _id: doc._id } as never)
      : null;
    lines.push(
      `${id}: deleted at Sage ${truth.find((t) => t.id === id)?.deleted_at}; doc ${JSON.stringify({ deleted: doc?.deleted, syncedAt: doc?.syncedAt, sourceUpdatedAt: doc?.sourceUpdatedAt })}; hash ${JSON.stringify(hash)}`,
    );
  }
  const runs = await stack.mongo.collection(COLLECTIONS.syncRuns).find({ tenantId }).sort({ startedAt: 1 }).toArray();
  for (const r of runs)
    lines.push(
      `run ${String(r._id).slice(-40)} ${r.mode} ${r.status} attempt ${r.attempt} ${r.startedAt?.toISOString?.()}..${r.finishedAt?.toISOString?.()} pages ${r.pages} deleted ${r.deleted} wm ${r.watermarkFrom?.toISOString?.()}->${r.watermarkTo?.toISOString?.()}`,
    );
  return lines.join('\n');
}

// The full form (50 aimed kills, each waiting for its target) needs longer than the suite's 15-minute default.
test(`fault suite: ${KILLS} SIGKILLs of the worker across refreshes and syncs`, { timeout: 45 * 60_000 }, async () => {
  const user = sim.admin.createUser({ provider: P, partitions: 1, customersPerPartition: CUSTOMERS });
  const tenantId = uniqueName('kills');
  const workflowId = connectionWorkflowId(P, tenantId);
  let crashes = 0;
  const watch = (w: FaultWorker) => void w.exited.then((e) => e.signal !== 'SIGKILL' && e.code !== 0 && crashes++);
  let worker = startFaultWorker(workerEnv(), bundle);
  watch(worker);
  await worker.ready;
  const status = await connectTenant(
    { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` },
    { tenantId, provider: P, userId: user.id, input: { sync: { intervalMinutes: 1 } } },
  );
  const partitionId = status.partitions[0]!.id;
  const handle = stack.client.workflow.getHandle(workflowId);

  let stop = false;
  const tokenErrors: string[] = [];
  let tokenCalls = 0;
  const tokenLoop = (async () => {
    while (!stop) {
      try {
        await acquireAccessToken(stack, { tenantId, provider: P }, { deadlineMs: 60_000 });
        tokenCalls++;
      } catch (err) {
        tokenErrors.push(String((err as Error).message).slice(0, 200));
      }
      await sleep(250);
    }
  })();
  const syncLoop = (async () => {
    let i = 0;
    while (!stop) {
      await handle.signal(syncNowSignal, { mode: i++ % 3 === 0 ? 'full' : 'incremental' }).catch(() => {});
      sim.admin.mutate({ provider: P, partitionId, update: 5, delete: 1, create: 2 });
      await sleep(2_000);
    }
  })();

  // Each kill is aimed (see killPlan): at a refresh, at a consent, or at a sync this worker is making progress on.
  const hits: Record<KillKind, number> = { refresh: 0, consent: 0, sync: 0 };
  const missed: string[] = [];
  const refreshPointsHit: string[] = [];
  const consents: { tenantId: string; result: Promise<{ ok: true; state: string } | { ok: false; error: string }> }[] =
    [];
  const forced: Promise<unknown>[] = [];
  const plan = killPlan(KILLS);
  for (let k = 0; k < plan.length; k++) {
    const kind = plan[k]!;
    const readyAt = new Date();
    if (kind === 'refresh') {
      // This worker was started with a refresh crash point: force a refresh (as after a 401) and let it die there.
      // (The token loop's own refresh may reach the crash point first; then no worker is left to answer this call.)
      const current = await Promise.race([
        acquireAccessToken(stack, { tenantId, provider: P }, { deadlineMs: 60_000 }).catch(() => null),
        worker.exited.then(() => null),
      ]);
      if (current) {
        forced.push(
          acquireAccessToken(
            stack,
            { tenantId, provider: P },
            { rejectedTokenVersion: current.tokenVersion, deadlineMs: 180_000 },
          ).catch((err: Error) => tokenErrors.push(`forced: ${String(err.message).slice(0, 200)}`)),
        );
      }
      const died = await Promise.race([worker.exited.then(() => true), sleep(45_000).then(() => false)]);
      const point = /TEST_CRASH_AT: killing worker process \d+ at (refresh:[a-z-]+)/.exec(worker.output())?.[1];
      if (died && point) {
        hits.refresh++;
        refreshPointsHit.push(point);
      } else missed.push(`refresh kill ${k}: ${died ? 'died elsewhere' : 'no refresh reached the crash point'}`);
    } else if (kind === 'consent') {
      // A second tenant consents; its connection test (after the code exchange is stored) is held at Sage and the
      // worker is killed during it.
      const other = sim.admin.createUser({ provider: P, partitions: 1, customersPerPartition: 20 });
      const otherTenant = uniqueName('kills-consent');
      const rule = sim.admin.addFaults({
        provider: P,
        scope: 'api',
        pathIncludes: '/businesses',
        kind: 'latency',
        latencyMs: 5_000,
        count: 1,
      }).rules[0]!;
      let settled = false;
      const result = connectTenant(
        { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` },
        { tenantId: otherTenant, provider: P, userId: other.id, input: { sync: { intervalMinutes: 60 } } },
      ).then(
        (st) => ((settled = true), { ok: true as const, state: st.state }),
        (err: Error) => ((settled = true), { ok: false as const, error: err.message }),
      );
      consents.push({ tenantId: otherTenant, result });
      let held = false;
      for (const deadline = Date.now() + 60_000; Date.now() < deadline && !settled; await sleep(100)) {
        const stored = await stack.mongo
          .collection(COLLECTIONS.tokens)
          .findOne({ _id: connectionWorkflowId(P, otherTenant) } as never);
        const seen = sim.admin.faults().rules.find((r) => r.id === rule.id)?.hits ?? 0;
        if (stored && seen > 0) {
          held = true;
          break;
        }
      }
      if (held && !settled) hits.consent++;
      else
        missed.push(`consent kill ${k}: ${settled ? 'consent finished first' : 'connection test never reached Sage'}`);
    } else {
      // Wait until this worker has moved a sync run forward, then kill it a moment later.
      let progressing = false;
      for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(200)) {
        if (
          (await stack.mongo
            .collection(COLLECTIONS.syncRuns)
            .countDocuments({ tenantId, status: 'running', updatedAt: { $gt: readyAt } })) > 0
        ) {
          progressing = true;
          break;
        }
      }
      await sleep(Math.random() * 1_500);
      const stillRunning =
        (await stack.mongo.collection(COLLECTIONS.syncRuns).countDocuments({ tenantId, status: 'running' })) > 0;
      if (progressing && stillRunning) hits.sync++;
      else
        missed.push(`sync kill ${k}: ${progressing ? 'the run finished first' : 'no sync progressed on this worker'}`);
    }
    await worker.kill();
    if (kind === 'consent') sim.admin.clearFaults();
    const next = plan[k + 1];
    // A refresh round needs its crash point in place before the worker starts (alternating before/after the store).
    const crashAt = next === 'refresh' ? REFRESH_CRASH_POINTS[(k + 1) % REFRESH_CRASH_POINTS.length]! : undefined;
    worker = startFaultWorker({ ...workerEnv(), ...(crashAt ? { TEST_CRASH_AT: crashAt } : {}) }, bundle);
    watch(worker);
    await worker.ready;
  }
  stop = true;
  await Promise.all([tokenLoop, syncLoop, ...forced]);
  const consentResults = await Promise.all(consents.map(async (c) => ({ tenantId: c.tenantId, ...(await c.result) })));

  // One more full run on a healthy worker; every earlier run must have finished too (none stuck).
  const final = (await stack.client.workflow.execute('syncCustomers', {
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    workflowId: uniqueName('final-full'),
    args: [{ tenantId, provider: P, mode: 'full' }],
    workflowExecutionTimeout: '5 minutes',
  })) as { status: string; partitions: Record<string, { status: string; error?: string }> };
  let stuck = await openSyncRuns();
  for (let i = 0; i < 60 && stuck.length > 0; i++) {
    await sleep(2_000);
    stuck = await openSyncRuns();
  }
  const connStatus = await handle.query(statusQuery);
  const counters = sim.admin.counters();
  const truth = sim.admin.truth(P, partitionId).customers;
  const report = await compareWithTruth(stack.mongo, { tenantId, provider: P, partitionId }, truth, {
    checkDeletions: true,
  });
  const connRunning = (await handle.describe()).status.name === 'RUNNING';
  if (report.extra.length > 0)
    console.log(`[faults] extras explained:\n${await explainExtras(tenantId, partitionId, report.extra, truth)}`);
  await worker.stop();

  console.log(
    `[faults] kills: ${KILLS} SIGKILLs (${hits.refresh} in a refresh [${refreshPointsHit.join(', ')}], ${hits.consent} during a consent, ${hits.sync} with a sync in flight; missed: ${missed.join('; ') || 'none'}); consents ${consentResults.map((c) => (c.ok ? c.state : c.error)).join(', ')}; ${counters.refreshes} refreshes, ${counters.reusedRefreshTokens} reused refresh tokens; ${tokenCalls} token calls ok, ${tokenErrors.length} failed${tokenErrors.length ? ` (first: ${tokenErrors[0]})` : ''}; ${describeReport(report)}; stuck ${stuck.length}; crashes ${crashes}; state ${connStatus.state}${connStatus.reason ? ` (${connStatus.reason})` : ''}`,
  );
  assert.equal(counters.reusedRefreshTokens, 0, 'reused refresh tokens');
  assert.equal(connStatus.state, 'connected', `still connected (reason ${connStatus.reason})`);
  assert.ok(connRunning, 'connection workflow still running');
  assert.equal(final.status, 'succeeded', JSON.stringify(final));
  assert.deepEqual(report.lost, [], 'customers lost');
  assert.deepEqual(report.duplicated, [], 'customers duplicated');
  assert.deepEqual(report.extra, [], 'customers deleted at Sage still live here');
  assert.deepEqual(stuck, [], 'stuck sync workflows');
  assert.equal(crashes, 0, 'worker crashes other than our kills');
  assert.deepEqual(
    tokenErrors.filter((e) => /reauthoriz/i.test(e)),
    [],
    'no caller was told to reauthorize',
  );
  for (const c of consentResults)
    assert.deepEqual(
      c,
      { tenantId: c.tenantId, ok: true, state: 'connected' },
      'a consent whose worker was killed still connects',
    );
  assert.ok(hits.refresh >= 1, `at least one kill inside a refresh (${missed.join('; ')})`);
  assert.ok(hits.consent >= 1, `at least one kill during a consent (${missed.join('; ')})`);
  assert.ok(hits.sync >= 1, `at least one kill with a sync in flight (${missed.join('; ')})`);
});
