/** Which mode a partition's run uses (pure, unit-tested). Contract §7: a connection's first sync is `full`. */
import type { SyncMode } from './runs.js';

export interface ModeInputs {
  requested?: SyncMode;
  /** The connection workflow's open full-sync request (`syncNow { mode: "full" }`, answered by its `syncPlan` query). */
  fullSyncRequested: boolean;
  lastFullSyncAt: Date | null;
  now: Date;
  fullSyncEveryHours: number;
}

export function decideMode(i: ModeInputs): { mode: SyncMode; reason: string } {
  if (i.requested === 'full') return { mode: 'full', reason: 'requested' };
  if (!i.lastFullSyncAt) return { mode: 'full', reason: 'first_sync' };
  if (i.fullSyncRequested) return { mode: 'full', reason: 'full_sync_requested' };
  if (i.now.getTime() - i.lastFullSyncAt.getTime() >= i.fullSyncEveryHours * 3_600_000)
    return { mode: 'full', reason: 'reconciliation_due' };
  return { mode: 'incremental', reason: 'scheduled' };
}
