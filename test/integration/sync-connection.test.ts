/**
 * The real path: a tenant consents through the connection workflow (simulator approves), the sync Schedule appears,
 * `syncNow { mode: "full" }` runs `syncCustomers` through the schedule with tokens from `acquireAccessToken`, results
 * land in MongoDB and in `status.lastSync`; a revoked grant makes the run end as skipped and pauses the schedule;
 * re-consent resumes it; disconnect deletes it. Simulator over HTTP, real Temporal worker and FerretDB.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ScheduleNotFoundError } from '@temporalio/client';
import got from 'got';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import {
  completeAuthorizationUpdate,
  connectionWorkflowId,
  disconnectSignal,
  statusQuery,
  syncNowSignal,
  syncPlanQuery,
  syncScheduleId,
} from '../../src/messages.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import type { CustomerDoc } from '../../src/sync/documents.js';
import { syncCustomers } from '../../src/workflows/index.js';
import { callbackArgs, connectTenant, followConsent, waitForStatus } from '../helpers/consent.js';
import { testStack, uniqueName, type TestStack } from '../helpers/env.js';
import { waitUntil } from '../helpers/wait.js';
import { createActivities } from '../../src/activities/index.js';
import { createLogger } from '../../src/lib/logger.js';

let sim: RunningSimulator;
let stack: TestStack;
before(async () => {
  sim = await startSimulator({ usersPerProvider: 0, customersPerPartition: 0 });
  stack = await testStack({ ...sim.env, SAGE_ACCOUNTING_PAGE_SIZE: '20' });
  await stack.startWorker();
});
after(async () => {
  await stack?.close();
  await sim?.close();
});

test('schedule created on connect; syncNow full syncs every business through the schedule; paused on reauth (run skipped); resumed; deleted on disconnect', async () => {
  const provider = 'sage-accounting' as const;
  const tenantId = uniqueName('conn').replace(/_/g, '-');
  const user = sim.admin.createUser({ provider, partitions: 2, customersPerPartition: 45 });
  const status = await connectTenant(
    { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` },
    { tenantId, provider, userId: user.id },
  );
  assert.equal(status.partitions.length, 2);
  // The consent answers only after its commands ran (schedule created, mirror written); a schedule command that
  // failed after its retries is recorded here, not as a schedule that never appears.
  assert.ok(!status.lastError, `consent finished without a failed command (e.g. ensureSchedule): ${status.lastError}`);
  const schedule = stack.client.schedule.getHandle(syncScheduleId(provider, tenantId));
  let describeError = '';
  const described = await waitUntil(
    () => `schedule (last describe error: ${describeError || 'none'})`,
    async () =>
      schedule.describe().catch((err: Error) => {
        describeError = `${err.name}: ${err.message}`;
        return null;
      }),
  );
  assert.equal(described.state.paused, false);

  // The schedule runs the first sync at once (no interval wait), and a connection's first sync is full.
  const conn = stack.client.workflow.getHandle(connectionWorkflowId(provider, tenantId));
  const synced = await waitForStatus(
    stack.client,
    conn.workflowId,
    (s) => status.partitions.every((p) => s.lastSync[p.id]?.status === 'succeeded'),
    90_000,
  );
  for (const p of status.partitions) {
    assert.equal(synced.lastSync[p.id]?.mode, 'full');
    assert.equal(synced.lastSync[p.id]?.fetched, 45);
    const truth = sim.admin.truth(provider, p.id, user.id).customers;
    const docs = await stack.mongo
      .collection<CustomerDoc>(COLLECTIONS.customers)
      .find({ tenantId, partitionId: p.id })
      .toArray();
    assert.deepEqual(
      docs.map((d) => d.externalId).sort(),
      truth.map((c) => c.id).sort(),
      `business ${p.id} equals Sage`,
    );
  }
  const firstRuns = await stack.mongo.collection(COLLECTIONS.syncRuns).find({ tenantId }).toArray();
  assert.equal(firstRuns.length, 2, 'one run, one sync_runs document per business');
  assert.ok(
    firstRuns.every((r) => r.status === 'succeeded' && r.mode === 'full' && String(r._id).startsWith('sage-sync-run:')),
    'the run was started by the schedule',
  );

  // syncNow full goes through the schedule too, and the request flag is cleared once it is done.
  await conn.signal(syncNowSignal, { mode: 'full' });
  let seenRuns = '';
  const runs = await waitUntil(
    async () => {
      // On a timeout, say what was there: the runs, and what the schedule did (its recent and running actions).
      const info = await schedule.describe().then(
        (d) =>
          `schedule recent=${JSON.stringify(d.info.recentActions.map((a) => a.action.workflow.workflowId))} running=${JSON.stringify(d.info.runningActions.map((a) => a.workflow.workflowId))}`,
        (err: Error) => `describe: ${err.message}`,
      );
      return `second scheduled run (sync_runs: ${seenRuns}; ${info})`;
    },
    async () => {
      const all = await stack.mongo.collection(COLLECTIONS.syncRuns).find({ tenantId }).toArray();
      seenRuns = JSON.stringify(all.map((r) => [r._id, r.status, r.mode]));
      return all.length === 4 && all.every((r) => r.status === 'succeeded') ? all : null;
    },
  );
  assert.ok(
    runs.every((r) => r.mode === 'full' && String(r._id).startsWith('sage-sync-run:')),
    'syncNow {mode: full} ran a full sync from the schedule',
  );
  const mirror = await waitUntil('full-sync request cleared', async () => {
    const m = await stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: conn.workflowId } as never);
    return m && m.fullSyncRequested === undefined ? m : null;
  });
  assert.equal(mirror.fullSyncRequested, undefined, 'the full-sync request is cleared once done');
  // Issue 16: the request lives in the connection workflow, which the sync plans from.
  await waitUntil('syncPlan: full-sync request cleared', async () =>
    (await conn.query(syncPlanQuery)).fullSyncRequest === null ? true : null,
  );

  // Issue 14: a sync run costs the connection workflow its syncReport signals and nothing more: no mirror activity
  // after each report (the partition sync writes connections.lastSyncAt itself) and no cancelled-and-re-armed timer.
  const reported = await waitForStatus(stack.client, conn.workflowId, (s) =>
    status.partitions.every((p) => (s.lastSync[p.id]?.finishedAt ?? '') > (synced.lastSync[p.id]?.finishedAt ?? '')),
  );
  const newest = Object.values(reported.lastSync)
    .map((x) => x.finishedAt)
    .sort()
    .at(-1)!;
  const doc = await waitUntil('connections.lastSyncAt of the second run', async () => {
    const m = await stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: conn.workflowId } as never);
    return m && m.lastSyncAt instanceof Date && m.lastSyncAt.toISOString() === newest ? m : null;
  });
  assert.equal(doc.state, 'connected');
  const events = (await conn.fetchHistory()).events ?? [];
  const syncNowAt = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'syncNow');
  assert.ok(syncNowAt > 0, 'the syncNow signal is in the history');
  const since = events.slice(syncNowAt);
  assert.equal(
    since.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'syncReport').length,
    2,
    'one report per business',
  );
  const mirrors = since.filter(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'mirrorConnection',
  ).length;
  assert.equal(
    mirrors,
    0,
    'no connections mirror activity for a run that changed nothing a reader of connections needs beyond lastSyncAt',
  );
  assert.equal(
    since.filter((e) => e.timerCanceledEventAttributes).length,
    0,
    'the wake-up timer is not cancelled and re-armed by messages',
  );

  // The user revokes our access in Sage: the next run gets 401, asks for a newer token, the refresh fails for good.
  sim.admin.revoke({ provider, userId: user.id });
  const skipped = await stack.client.workflow.execute(syncCustomers, {
    workflowId: uniqueName('sync-after-revoke'),
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId, provider }],
  });
  assert.equal(skipped.status, 'skipped', 'reauthorization ends the run as skipped, not failed-and-retrying');
  const reauth = await waitForStatus(stack.client, conn.workflowId, (s) => s.state === 'reauthorization_required');
  assert.ok(reauth.authorizationUrl);
  await waitUntil('schedule paused', async () => (await schedule.describe()).state.paused);

  // Re-consent: the simulator approves, the workflow takes the new code, the schedule runs again.
  await got.post(`${sim.url}/__admin/next-consent`, { json: { provider, userId: user.id } });
  const back = await followConsent(reauth.authorizationUrl!);
  const again = await conn.executeUpdate(completeAuthorizationUpdate, { args: [callbackArgs(back)] });
  assert.equal(again.state, 'connected');
  await waitUntil('schedule resumed', async () => !(await schedule.describe()).state.paused);

  await conn.signal(disconnectSignal, { revoke: false });
  const final = await conn.result();
  assert.equal(final.state, 'disconnected');
  await waitUntil('schedule deleted', async () =>
    schedule.describe().then(
      () => false,
      (err) => err instanceof ScheduleNotFoundError,
    ),
  );
  assert.equal(
    await stack.mongo.collection(COLLECTIONS.customers).countDocuments({ tenantId }),
    90,
    'synced customers stay after disconnect',
  );
});

test('a sync planned while the connections mirror still says awaiting_consent asks the workflow and syncs (the first sync is not skipped)', async () => {
  const provider = 'sage-accounting' as const;
  const tenantId = uniqueName('stale').replace(/_/g, '-');
  const user = sim.admin.createUser({ provider, partitions: 2, customersPerPartition: 3 });
  const status = await connectTenant(
    { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` },
    { tenantId, provider, userId: user.id },
  );
  assert.equal(status.state, 'connected');
  // The race: the schedule's immediate first run plans before the workflow has written its mirror. Recreate that
  // moment deterministically: the mirror says awaiting_consent while the workflow is connected.
  const id = connectionWorkflowId(provider, tenantId);
  await stack.mongo
    .collection(COLLECTIONS.connections)
    .updateOne({ _id: id } as never, { $set: { state: 'awaiting_consent', partitions: [] } });
  const acts = createActivities({
    config: stack.config,
    mongo: stack.mongo,
    client: stack.client,
    log: createLogger({ level: 'silent' }),
  });
  const plan = await acts.planCustomerSync({ tenantId, provider });
  assert.ok(!plan.skipped, `planned, not skipped (${plan.skipped})`);
  assert.deepEqual(plan.partitions.map((p) => p.partition.id).sort(), status.partitions.map((p) => p.id).sort());
});

test('syncNow full is honoured even when a partition sync rewrites the connections document meanwhile (the plan asks the workflow), and clears after the full run', async () => {
  const provider = 'sage-accounting' as const;
  const tenantId = uniqueName('fullrace').replace(/_/g, '-');
  const user = sim.admin.createUser({ provider, partitions: 2, customersPerPartition: 5 });
  const status = await connectTenant(
    { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` },
    { tenantId, provider, userId: user.id },
  );
  const id = connectionWorkflowId(provider, tenantId);
  const conn = stack.client.workflow.getHandle(id);
  await waitForStatus(
    stack.client,
    id,
    (s) => status.partitions.every((p) => s.lastSync[p.id]?.status === 'succeeded'),
    90_000,
  );
  const runsOf = () =>
    stack.mongo
      .collection<{ _id: string; status: string; mode: string; startedAt: Date }>(COLLECTIONS.syncRuns)
      .find({ tenantId })
      .sort({ startedAt: 1 })
      .toArray();
  assert.equal((await runsOf()).length, 2, 'the first (full) run');

  // A run in progress: its Sage calls are held, so the partition syncs are running when the full request arrives.
  const [hold] = sim.admin.addFaults({ provider, scope: 'api', kind: 'hold', latencyMs: 60_000 }).rules;
  const triggered = async () => {
    const events = (await conn.fetchHistory()).events ?? [];
    const scheduled = new Set(
      events
        .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'triggerSync')
        .map((e) => String(e.eventId)),
    );
    return events.filter(
      (e) =>
        e.activityTaskCompletedEventAttributes &&
        scheduled.has(String(e.activityTaskCompletedEventAttributes.scheduledEventId)),
    ).length;
  };
  try {
    await conn.signal(syncNowSignal, { mode: 'incremental' });
    await waitUntil('the incremental run is held at Sage', async () =>
      (sim.admin.faults().rules.find((r) => r.id === hold!.id)?.hits ?? 0) >= 1 ? true : null,
    );
    // What a partition sync's write-back of the document looks like on FerretDB when it read the document before the
    // full-sync request was recorded: the whole document, as it was, written back after the request.
    const before = await stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: id } as never);
    assert.ok(before);
    await conn.signal(syncNowSignal, { mode: 'full' });
    await waitUntil('both syncNow triggers done', async () => ((await triggered()) >= 2 ? true : null));
    await stack.mongo
      .collection(COLLECTIONS.connections)
      .replaceOne({ _id: id } as never, { ...before, updatedAt: new Date() });
  } finally {
    sim.admin.clearFaults(hold!.id);
  }

  // The held run finishes, then the buffered run of the full request starts: it must plan full for every partition.
  const runs = await waitUntil('three runs of two partitions', async () => {
    const all = await runsOf();
    return all.length === 6 && all.every((r) => r.status === 'succeeded') ? all : null;
  });
  const [held, requested] = [runs.slice(2, 4), runs.slice(4, 6)];
  assert.deepEqual(
    held.map((r) => r.mode),
    ['incremental', 'incremental'],
    'the run in progress stayed incremental',
  );
  assert.deepEqual(
    requested.map((r) => r.mode),
    ['full', 'full'],
    'the run after syncNow {mode: full} is full for every partition, whatever the connections document says',
  );
  // The request clears once both partitions reported the full run planned with it, and only then.
  const plan = await waitUntil('full-sync request cleared', async () => {
    const p = await conn.query(syncPlanQuery);
    return p.fullSyncRequest === null ? p : null;
  });
  assert.equal(plan.state, 'connected');
  const s = await conn.query(statusQuery);
  for (const p of status.partitions) assert.equal(s.lastSync[p.id]?.mode, 'full');
  const doc = await stack.mongo.collection(COLLECTIONS.connections).findOne({ _id: id } as never);
  assert.equal(doc?.fullSyncRequested, undefined, 'no full-sync flag in the connections document');
  // And the next run is incremental again: the request was honoured once, not kept.
  const next = await stack.client.workflow.execute(syncCustomers, {
    workflowId: uniqueName('sync-after-full'),
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId, provider }],
  });
  assert.deepEqual(
    Object.values(next.partitions).map((p) => p.mode),
    ['incremental', 'incremental'],
  );
  await conn.signal(disconnectSignal, { revoke: false });
  await conn.result();
});
