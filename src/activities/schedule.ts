/**
 * The per-connection sync Schedule (contract §3): id `sage-sync:{provider}:{tenantId}`, starting `syncCustomers
 * {tenantId, provider}` every `intervalMinutes` with overlap policy Skip. Called by the connection workflow: created
 * (or brought up to date) when the connection becomes connected, paused while reauthorization is required, resumed on
 * re-consent, deleted on disconnect. Every function is idempotent, so activity retries are harmless.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type ScheduleOptionsAction } from '@temporalio/client';
import { COLLECTIONS } from '../lib/mongo.js';
import {
  connectionWorkflowId,
  SageProviderSearchAttribute,
  syncScheduleId,
  TenantIdSearchAttribute,
  type Provider,
} from '../messages.js';
import type { ActivityDeps } from './deps.js';

export interface ScheduleTarget {
  tenantId: string;
  provider: Provider;
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

  return {
    /** Creates the schedule, or updates interval and action of an existing one; `paused` sets its paused state. */
    async ensureSyncSchedule(p: ScheduleTarget & { intervalMinutes: number; paused?: boolean }): Promise<'created' | 'updated'> {
      const spec = { intervals: [{ every: `${p.intervalMinutes}m` as const }] };
      const note = `connection ${connectionWorkflowId(p.provider, p.tenantId)}`;
      try {
        await client.schedule.create({
          scheduleId: syncScheduleId(p.provider, p.tenantId),
          spec,
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
        spec,
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
    async resumeSyncSchedule(p: ScheduleTarget): Promise<boolean> {
      try {
        await handleFor(p).unpause('connection recovered');
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
     * Runs the sync now (`syncNow` signal). For `full`, the flag is recorded on the connections document first; the sync
     * workflow reads and clears it. The trigger uses overlap BUFFER_ONE, not the schedule's Skip: a "sync now" while a
     * run is in progress is queued to run once right after it (never two at once, and never dropped).
     */
    async triggerSync(p: ScheduleTarget & { mode: 'incremental' | 'full' }): Promise<boolean> {
      if (p.mode === 'full') {
        await deps.mongo
          .collection(COLLECTIONS.connections)
          .updateOne({ _id: connectionWorkflowId(p.provider, p.tenantId) } as never, { $set: { fullSyncRequested: true, updatedAt: new Date() } }, { upsert: true });
      }
      try {
        // BUFFER_ONE: a "sync now" while a run is in progress runs once more right after it, instead of being dropped.
        await handleFor(p).trigger(ScheduleOverlapPolicy.BUFFER_ONE);
        return true;
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) return false;
        throw err;
      }
    },
  };
}
