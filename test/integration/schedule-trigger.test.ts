/**
 * Temporal quirk, against the real server: a Schedule names each run `{workflowId}-{time to the second}`.
 * A `syncNow` in the same second as the schedule's previous action (here: its creation, which triggers at once) got the
 * first run's workflow id, and its start was refused: the request was lost (this test, before the fix: one action in
 * 30 s; the cause of sync-connection's "timed out waiting for second scheduled run" in CI). `triggerSync` now spaces
 * the trigger into the next second.
 * Also: a new schedule's per-tenant offset can fall seconds after its creation; its regular runs begin later
 * (`spec.startAt`), so the immediate first sync is not followed by a second one at once.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { createActivities } from '../../src/activities/index.js';
import { createLogger } from '../../src/lib/logger.js';
import { scheduleOffsetSeconds } from '../../src/activities/schedule.js';
import { syncScheduleId } from '../../src/messages.js';
import { testStack, uniqueName, type TestStack } from '../helpers/env.js';

let stack: TestStack;
before(async () => {
  stack = await testStack();
  await stack.startWorker();
});
after(async () => {
  await stack?.close();
});
const activities = () =>
  createActivities({
    config: stack.config,
    mongo: stack.mongo,
    client: stack.client,
    log: createLogger({ level: 'silent' }),
  });

test('a new schedule whose offset falls seconds after its creation takes only the immediate first run, not a second', async () => {
  const acts = activities();
  // A tenant whose one-minute schedule would fire 4 s after creation (interval specs fire at epoch + n × 60 s + offset).
  const wanted = (Math.floor(Date.now() / 1000) + 4) % 60;
  const base = uniqueName('soon').replace(/_/g, '-');
  let tenantId = base;
  for (let i = 0; scheduleOffsetSeconds(syncScheduleId('sage-accounting', tenantId), 1) !== wanted; i++)
    tenantId = `${base}-${i}`;
  const target = { provider: 'sage-accounting' as const, tenantId };
  const handle = stack.client.schedule.getHandle(syncScheduleId(target.provider, target.tenantId));
  try {
    await acts.ensureSyncSchedule({ ...target, intervalMinutes: 1 });
    await sleep(12_000); // past the offset second, with room for a late action
    const { info, spec } = await handle.describe();
    const ids = info.recentActions.map((a) => a.action.workflow.workflowId);
    assert.equal(
      ids.length,
      1,
      `only the immediate first run (before the fix, a second one 4 s later): ${JSON.stringify(ids)}`,
    );
    assert.ok(spec.startAt && spec.startAt.getTime() > Date.now(), 'regular runs begin later (spec.startAt)');
  } finally {
    await handle.delete().catch(() => {});
  }
});

test('a syncNow in the same second as the schedule creation runs under its own workflow id', async () => {
  const acts = activities();
  // No connection workflow: each run plans, finds none and ends as skipped within a second — fast enough to collide.
  const target = { provider: 'sage-accounting' as const, tenantId: uniqueName('trig').replace(/_/g, '-') };
  const handle = stack.client.schedule.getHandle(syncScheduleId(target.provider, target.tenantId));
  try {
    // Start just after a second boundary so creation and trigger fall in the same second (the old code's collision).
    await sleep(1000 - (Date.now() % 1000) + 20);
    await acts.ensureSyncSchedule({ ...target, intervalMinutes: 60 });
    assert.equal(await acts.triggerSync({ ...target, mode: 'incremental' }), true);
    const deadline = Date.now() + 30_000;
    let ids: string[] = [];
    while (Date.now() < deadline) {
      ids = (await handle.describe()).info.recentActions.map((a) => a.action.workflow.workflowId);
      if (ids.length >= 2) break;
      await sleep(200);
    }
    assert.equal(ids.length, 2, `two actions taken (creation + syncNow): ${JSON.stringify(ids)}`);
    assert.notEqual(ids[0], ids[1], `each run has its own workflow id: ${JSON.stringify(ids)}`);
  } finally {
    await handle.delete().catch(() => {});
  }
});
