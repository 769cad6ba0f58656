/**
 * `sync_runs` (one document per run and partition, `_id` = `{syncWorkflowId}:{partitionId}`, contract §4) doubles as
 * the page checkpoint; `sync_state` (one per partition, `_id` = `{provider}:{tenantId}:{partitionId}`) holds what the
 * next run starts from: the watermark, the deletion-feed position, and when the last full reconciliation succeeded.
 */
import type { Collection } from 'mongodb';
import type { Cursor, Watermark } from '../providers/types.js';
import type { PartitionKey } from './documents.js';

export type SyncMode = 'incremental' | 'full';

export interface RunCounts {
  pages: number;
  fetched: number;
  upserted: number;
  modified: number;
  deleted: number;
  quarantined: number;
}

export const zeroCounts = (): RunCounts => ({
  pages: 0,
  fetched: 0,
  upserted: 0,
  modified: 0,
  deleted: 0,
  quarantined: 0,
});

/** What a resumed attempt needs to continue at the next page (also the activity heartbeat details). */
export interface Checkpoint {
  phase: 'customers' | 'deletions' | 'done';
  cursor: Cursor | null;
  counts: RunCounts;
  /** Highest `(updatedAt, id)` seen so far in this run. */
  watermark: Watermark | null;
  /** Server clock at the first page (start of the deletion feed after a full run). */
  serverStartedAt: string | null;
  /** Pages of the deletion feed read (counted in `counts.pages` too). */
  deletionPages: number;
  /** Sage's `$total` for this listing when it gives one (Sage Accounting), for progress bars; absent otherwise. */
  total?: number;
}

export interface SyncRunDoc extends PartitionKey, RunCounts {
  _id: string;
  syncWorkflowId: string;
  mode: SyncMode;
  status: 'running' | 'succeeded' | 'failed';
  startedAt: Date;
  finishedAt: Date | null;
  watermarkFrom: Date | null;
  watermarkTo: Date | null;
  error: string | null;
  attempt: number;
  checkpoint: Checkpoint | null;
  /**
   * Where this run reads the deletion feed from: `sync_state.deletionsSince` as its FIRST attempt found it (set once,
   * on insert). Absent on runs recorded before it existed.
   */
  deletionsFrom?: Date | null;
  updatedAt: Date;
}

export interface SyncStateDoc extends PartitionKey {
  _id: string;
  watermark: Watermark | null;
  /** Exclusive lower bound of the next `deleted_since` read (Sage Accounting). */
  deletionsSince: Date | null;
  lastFullSyncAt: Date | null;
  lastSyncAt: Date | null;
  updatedAt: Date;
}

export async function startRun(
  coll: Collection<SyncRunDoc>,
  id: string,
  fields: PartitionKey & { syncWorkflowId: string; mode: SyncMode; watermarkFrom: Date | null; attempt: number },
  now: Date,
  pinned: { deletionsFrom: Date | null } = { deletionsFrom: null },
): Promise<SyncRunDoc | null> {
  // A retried attempt keeps the first attempt's start time, checkpoint and deletion-feed start: it continues the same run.
  await coll.updateOne(
    { _id: id },
    {
      $setOnInsert: {
        startedAt: now,
        ...zeroCounts(),
        finishedAt: null,
        error: null,
        checkpoint: null,
        watermarkTo: null,
        deletionsFrom: pinned.deletionsFrom,
      },
      $set: { ...fields, status: 'running', updatedAt: now },
    },
    { upsert: true },
  );
  return coll.findOne({ _id: id });
}

export async function checkpointRun(
  coll: Collection<SyncRunDoc>,
  id: string,
  cp: Checkpoint,
  now: Date,
): Promise<void> {
  await coll.updateOne(
    { _id: id },
    {
      $set: {
        ...cp.counts,
        total: cp.total ?? null,
        watermarkTo: cp.watermark ? new Date(cp.watermark.updatedAt) : null,
        checkpoint: cp,
        updatedAt: now,
      },
    },
  );
}

export async function finishRun(
  coll: Collection<SyncRunDoc>,
  id: string,
  outcome: { status: 'succeeded' | 'failed'; counts: RunCounts; watermarkTo: Date | null; error: string | null },
  now: Date,
): Promise<void> {
  await coll.updateOne(
    { _id: id },
    {
      $set: {
        ...outcome.counts,
        status: outcome.status,
        finishedAt: now,
        watermarkTo: outcome.watermarkTo,
        error: outcome.error,
        updatedAt: now,
      },
    },
  );
}

export async function readState(coll: Collection<SyncStateDoc>, id: string): Promise<SyncStateDoc | null> {
  return coll.findOne({ _id: id });
}

export async function saveState(
  coll: Collection<SyncStateDoc>,
  id: string,
  fields: Omit<SyncStateDoc, '_id' | 'updatedAt'>,
  now: Date,
): Promise<void> {
  await coll.updateOne({ _id: id }, { $set: { ...fields, updatedAt: now } }, { upsert: true });
}
