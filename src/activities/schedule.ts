/**
 * The per-connection sync Schedule (contract §3): id `sage-sync:{provider}:{tenantId}`, starting `syncCustomers
 * {tenantId, provider}` every `intervalMinutes` (at a per-tenant offset) with overlap policy Skip. Called by the connection workflow: created
 * (or brought up to date) when the connection becomes connected, paused while reauthorization is required, unpaused
 * on re-consent (`ensureSyncSchedule` with `paused: false`), deleted on disconnect. Every function is idempotent, so
 * activity retries are harmless.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type ScheduleDescription,
  type ScheduleOptionsAction,
} from '@temporalio/client';
import {
  connectionWorkflowId,
  SageProviderSearchAttribute,
  syncScheduleId,
  TenantIdSearchAttribute,
  type Provider,
} from '../messages.js';
import type { ActivityDeps } from './deps.js';
import { mappingFailures } from '../errors.js';

export interface ScheduleTarget {
  tenantId: string;
  provider: Provider;
}

/** How close the server's and the worker's clocks are assumed to be when a trigger is spaced from the last action. */
export const TRIGGER_CLOCK_MARGIN_MS = 300;

/**
 * Temporal quirk: the Schedule names each run `{action workflowId}-{its time to the second}` (RFC 3339,
 * no fraction). An action in the same second as the previous one gets the previous run's workflow id: on the dev
 * server its start was refused and the `syncNow` silently lost (test/integration/schedule-trigger.test.ts); had it
 * started, it would have shared that run's `sync_runs` documents and page checkpoints (keyed by the workflow id,
 * contract §4). So a trigger waits until the second of the schedule's latest action has passed (its creation counts:
 * it triggers at once).
 * Returns the milliseconds to wait (0 when the latest action is in an earlier second).
 */
export function waitBeforeTrigger(d: Pick<ScheduleDescription, 'info'>, nowMs: number): number {
  const times = [d.info.createdAt, ...d.info.recentActions.flatMap((a) => [a.scheduledAt, a.takenAt])]
    .map((t) => t?.getTime())
    .filter((t): t is number => typeof t === 'number' && Number.isFinite(t));
  if (times.length === 0) return 0;
  const nextSecond = (Math.floor(Math.max(...times) / 1000) + 1) * 1000;
  return Math.max(0, nextSecond + TRIGGER_CLOCK_MARGIN_MS - nowMs);
}

/**
 * Where in its interval a schedule fires, in whole seconds: a hash of the schedule id, so it is the same on every
 * update and spread evenly over tenants. Without it an interval spec fires at `epoch + n × every`, i.e. every tenant
 * with the same interval at the same second: 1,000 five-minute tenants were 1,000 runs started at once on one worker
 * every 5 minutes (the tenants bench saw 8 of 100 sampled runs in a window that should hold 100, the rest missing
 * the 1-minute catch-up window while the server worked through the burst).
 */
export function scheduleOffsetSeconds(scheduleId: string, intervalMinutes: number): number {
  const span = Math.max(1, Math.round(intervalMinutes * 60));
  return createHash('sha256').update(scheduleId).digest().readUInt32BE(0) % span;
}

/** The longest the first regular run waits after creation (the immediate first sync covers the time before it). */
export const FIRST_REGULAR_RUN_MAX_DELAY_MS = 5 * 60_000;

/**
 * When a new schedule's regular runs begin (`spec.startAt`): half an interval after creation, at most 5 minutes. The
 * per-tenant offset can put the first regular action seconds after the immediate first sync (CI saw an hourly tenant
 * created at 18:40:12 whose offset was 40:14: a second run two seconds after the first, whose failure report then
 * replaced the first run's summary); no regular run starts before this.
 */
export function firstRegularRunAt(now: number, intervalMinutes: number): Date {
  return new Date(now + Math.min((intervalMinutes * 60_000) / 2, FIRST_REGULAR_RUN_MAX_DELAY_MS));
}

export const syncRunWorkflowId = (provider: Provider, tenantId: string) => `sage-sync-run:${provider}:${tenantId}`;

export function createScheduleActivities(deps: ActivityDeps) {
  const { client, config } = deps;
  const handleFor = (t: ScheduleTarget) => client.schedule.getHandle(syncScheduleId(t.provider, t.tenantId));

  function action(t: ScheduleTarget): ScheduleOptionsAction {
    return {
      type: 'startWorkflow',
      // By name: the sync workflow lives in another module and the schedule only needs its type.
      workflowType: 'syncCustomers',
      args: [{ tenantId: t.tenantId, provider: t.provider }],
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      workflowId: syncRunWorkflowId(t.provider, t.tenantId),
      typedSearchAttributes: [
        { key: TenantIdSearchAttribute, value: t.tenantId },
        { key: SageProviderSearchAttribute, value: t.provider },
      ],
    };
  }

  return mappingFailures({
    /** Creates the schedule, or updates interval and action of an existing one; `paused` sets its paused state. */
    async ensureSyncSchedule(
      p: ScheduleTarget & { intervalMinutes: number; paused?: boolean },
    ): Promise<'created' | 'updated'> {
      const offset = scheduleOffsetSeconds(syncScheduleId(p.provider, p.tenantId), p.intervalMinutes);
      const spec = { intervals: [{ every: `${p.intervalMinutes}m` as const, offset: `${offset}s` as const }] };
      const note = `connection ${connectionWorkflowId(p.provider, p.tenantId)}`;
      try {
        await client.schedule.create({
          scheduleId: syncScheduleId(p.provider, p.tenantId),
          spec: { ...spec, startAt: firstRegularRunAt(Date.now(), p.intervalMinutes) },
          action: action(p),
          policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
          // The first (full) sync runs right after consent instead of one interval later.
          state: { paused: p.paused ?? false, note, triggerImmediately: !(p.paused ?? false) },
        });
        return 'created';
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      }
      const handle = handleFor(p);
      await handle.update((prev) => ({
        ...prev,
        spec: { ...spec, ...(prev.spec.startAt ? { startAt: prev.spec.startAt } : {}) },
        action: action(p),
        policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP },
        state: { ...prev.state, paused: p.paused ?? false, note },
      }));
      return 'updated';
    },
    async pauseSyncSchedule(p: ScheduleTarget & { reason: string }): Promise<boolean> {
      try {
        await handleFor(p).pause(`reauthorization required: ${p.reason}`);
        return true;
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) return false;
        throw err;
      }
    },
    async deleteSyncSchedule(p: ScheduleTarget): Promise<boolean> {
      try {
        await handleFor(p).delete();
        return true;
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) return false;
        throw err;
      }
    },
    /**
     * Runs the sync now (`syncNow` signal). A `full` request is kept by the connection workflow itself (its machine
     * state, answered by the `syncPlan` query the run plans from), not here: `mode` only says what was asked. The
     * trigger overrides the schedule's Skip with BUFFER_ONE: a sync already running is not doubled, and the request
     * runs once right after it.
     */
    async triggerSync(p: ScheduleTarget & { mode: 'incremental' | 'full' }): Promise<boolean> {
      try {
        const handle = handleFor(p);
        const wait = waitBeforeTrigger(await handle.describe(), Date.now());
        if (wait > 0) await sleep(wait);
        // BUFFER_ONE: a "sync now" while a run is in progress runs once more right after it, instead of being dropped.
        await handle.trigger(ScheduleOverlapPolicy.BUFFER_ONE);
        return true;
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) return false;
        throw err;
      }
    },
  });
}
