/**
 * Activities of the `syncCustomers` workflow: plan the run (partitions and modes), sync one partition (heartbeating,
 * resumable from its checkpoint), and the bookkeeping around them.
 */
import { activityInfo, Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/common';
import { COLLECTIONS } from '../lib/mongo.js';
import {
  countSyncAccessDenied,
  countSyncRecords,
  countSyncRun,
  observeSageResponse,
  recordSyncSucceeded,
} from '../lib/metrics.js';
import {
  connectionWorkflowId,
  statusQuery,
  type ConnectionState,
  type Partition,
  type PartitionSyncSummary,
  type Provider,
} from '../messages.js';
import { createSageHttp, type SageHttp } from '../providers/http.js';
import { customerSourceFor, pageSizeFor, providerFor } from '../providers/index.js';
import { readHorizon } from '../sync/change-seq.js';
import { syncStateId } from '../connection/ids.js';
import { markRunFailed, syncPartition, type Checkpoint } from '../sync/partition-sync.js';
import { decideMode } from '../sync/plan.js';
import type { SyncMode, SyncStateDoc } from '../sync/runs.js';
import type { TokenSource } from '../sync/tokens.js';
import { acquireAccessToken } from '../tokens/access.js';
import type { ActivityDeps } from './deps.js';
import type { AccessReason } from '../connection/reasons.js';
import { mappingFailures } from '../errors.js';

export interface SyncTargetInput {
  tenantId: string;
  provider: Provider;
}

export interface PartitionPlan {
  partition: Partition;
  mode: SyncMode;
  reason: string;
}

export interface SyncPlan {
  /** Set when the run must not touch Sage (not connected); the workflow then ends as skipped. */
  skipped: string | null;
  partitions: PartitionPlan[];
  edition?: string;
  fullSyncRequested: boolean;
  heartbeatTimeoutSeconds: number;
}

export interface SyncPartitionInput extends SyncTargetInput {
  partition: Partition;
  edition?: string;
  mode: SyncMode;
  syncWorkflowId: string;
}

interface ConnectionDoc {
  _id: string;
  state?: ConnectionState;
  reason?: string | null;
  partitions?: Partition[];
  fullSyncRequested?: boolean;
  edition?: string;
  sage200?: { edition?: string };
  lastSyncAt?: Date | null;
  updatedAt?: Date;
}

export interface SyncActivityOptions {
  /** Test seam: where tokens come from (production: the connection workflow via `acquireAccessToken`). */
  tokenSourceFor?: (target: SyncTargetInput) => TokenSource;
  http?: SageHttp;
}

export function createSyncActivities(deps: ActivityDeps, opts: SyncActivityOptions = {}) {
  const { config, mongo } = deps;
  const http =
    opts.http ?? createSageHttp({ maxConcurrency: config.SAGE_MAX_CONCURRENCY, onResponse: observeSageResponse });
  const tokenSourceFor =
    opts.tokenSourceFor ??
    ((t: SyncTargetInput): TokenSource => ({
      get: (o) =>
        acquireAccessToken(
          deps,
          t,
          o?.rejectedTokenVersion !== undefined ? { rejectedTokenVersion: o.rejectedTokenVersion } : {},
        ),
    }));

  async function readConnection(t: SyncTargetInput): Promise<ConnectionDoc | null> {
    const id = connectionWorkflowId(t.provider, t.tenantId);
    const doc = await mongo.collection<ConnectionDoc>(COLLECTIONS.connections).findOne({ _id: id });
    if (doc?.state === 'connected' && doc.partitions) return doc;
    // The mirror may lag behind the workflow (the schedule's immediate first run can plan before the consent's mirror
    // write lands, and would be skipped as `awaiting_consent` until the next interval): whenever it does not say
    // connected, the workflow itself answers.
    try {
      const status = await deps.client.workflow.getHandle(id).query(statusQuery);
      return { ...doc, _id: id, state: status.state, reason: status.reason, partitions: status.partitions };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return doc;
      throw err;
    }
  }

  return mappingFailures({
    /** Which partitions to sync and in which mode (contract §7: first sync full; full on request or when due). */
    async planCustomerSync(input: SyncTargetInput & { mode?: SyncMode }): Promise<SyncPlan> {
      const conn = await readConnection(input);
      const base = {
        fullSyncRequested: conn?.fullSyncRequested === true,
        heartbeatTimeoutSeconds: config.SYNC_HEARTBEAT_TIMEOUT_SECONDS,
      };
      if (!conn) return { ...base, skipped: 'connection_not_found', partitions: [] };
      if (conn.state !== 'connected')
        return { ...base, skipped: conn.reason ?? conn.state ?? 'not_connected', partitions: [] };
      const now = new Date();
      const states = mongo.db.collection<SyncStateDoc>(COLLECTIONS.syncState);
      const partitions: PartitionPlan[] = [];
      for (const partition of conn.partitions ?? []) {
        const state = await states.findOne({
          _id: syncStateId({ tenantId: input.tenantId, provider: input.provider, partitionId: partition.id }),
        });
        const decided = decideMode({
          requested: input.mode,
          fullSyncRequested: base.fullSyncRequested,
          lastFullSyncAt: state?.lastFullSyncAt ?? null,
          now,
          fullSyncEveryHours: config.FULL_SYNC_EVERY_HOURS,
        });
        partitions.push({ partition, ...decided });
      }
      // Sage 200 only (the product with editions): the connection's edition, else the registry's default.
      const defaultEdition = providerFor(input.provider).defaultEdition;
      const edition = defaultEdition ? (conn.sage200?.edition ?? conn.edition ?? defaultEdition) : undefined;
      return { ...base, skipped: null, partitions, ...(edition ? { edition } : {}) };
    },

    /** Syncs one partition; heartbeats its checkpoint after every page and resumes from it on a retry. */
    async syncCustomerPartition(input: SyncPartitionInput): Promise<PartitionSyncSummary> {
      const ctx = Context.current();
      const info = activityInfo();
      const resumeFrom = (info.heartbeatDetails as Checkpoint | undefined) ?? null;
      let last: Checkpoint | null = resumeFrom;
      // Heartbeat between pages too (a page can wait out a long Retry-After), so a live attempt is never timed out.
      const beat = setInterval(
        () => ctx.heartbeat(last ?? undefined),
        Math.max(1_000, (config.SYNC_HEARTBEAT_TIMEOUT_SECONDS * 1000) / 3),
      );
      try {
        const result = await syncPartition(
          {
            mongo,
            source: customerSourceFor(input.provider, http, config),
            tokens: tokenSourceFor(input),
            pageSize: pageSizeFor(input.provider, config),
            pageConcurrency: config.SAGE_PAGE_CONCURRENCY,
            overlapSeconds: config.SYNC_OVERLAP_SECONDS,
            onCheckpoint: (cp) => {
              last = cp;
              ctx.heartbeat(cp);
              // Cancellation (workflow cancelled, or this attempt timed out) arrives with heartbeats: stop between pages.
              if (ctx.cancellationSignal.aborted)
                throw ctx.cancellationSignal.reason ?? new Error('activity cancelled');
            },
            log: {
              info: (o, m) => ctx.log.info(m, o as Record<string, unknown>),
              warn: (o, m) => ctx.log.warn(m, o as Record<string, unknown>),
            },
          },
          {
            target: {
              tenantId: input.tenantId,
              provider: input.provider,
              partition: input.partition,
              ...(input.edition ? { edition: input.edition } : {}),
            },
            mode: input.mode,
            syncWorkflowId: input.syncWorkflowId,
            resumeFrom,
            attempt: info.attempt,
          },
        );
        const { fetched, upserted, quarantined } = result.summary;
        countSyncRecords(input.provider, { fetched, upserted, quarantined });
        countSyncRun(input.provider, input.mode, 'succeeded');
        recordSyncSucceeded(input.provider, input.tenantId);
        // `connections.lastSyncAt` (contract §4) is written here, from the partition's own finishedAt (the value its
        // syncReport carries), so the connection workflow need not run a mirror activity after every report. `$max`:
        // partitions finish in any order, and the workflow's own mirror writes it the same way.
        await mongo
          .collection<ConnectionDoc>(COLLECTIONS.connections)
          .updateOne(
            { _id: connectionWorkflowId(input.provider, input.tenantId), state: { $ne: 'disconnected' } },
            { $max: { lastSyncAt: new Date(result.summary.finishedAt) }, $set: { updatedAt: new Date() } },
          );
        // For readers without a webhook: `status.lastSync[partition].changeHorizon` (read after this partition closed).
        return { ...result.summary, changeHorizon: await readHorizon(mongo.db, input) };
      } finally {
        clearInterval(beat);
      }
    },

    /** Marks a partition's run failed (or skipped for reauthorization) in `sync_runs` once the workflow gives up on it. */
    async recordPartitionSyncFailure(
      input: SyncTargetInput & {
        partitionId: string;
        mode: SyncMode;
        syncWorkflowId: string;
        error: string;
        reason?: AccessReason;
      },
    ): Promise<void> {
      countSyncRun(input.provider, input.mode, 'failed');
      if (input.reason) countSyncAccessDenied(input.provider, input.reason);
      await markRunFailed(
        mongo,
        {
          tenantId: input.tenantId,
          provider: input.provider,
          partitionId: input.partitionId,
          syncWorkflowId: input.syncWorkflowId,
          mode: input.mode,
        },
        input.error,
        new Date(),
        input.reason ?? null,
      );
    },

    /** Clears `fullSyncRequested` after every partition finished a full run successfully. */
    async clearFullSyncRequest(input: SyncTargetInput): Promise<void> {
      await mongo
        .collection<ConnectionDoc>(COLLECTIONS.connections)
        .updateOne(
          { _id: connectionWorkflowId(input.provider, input.tenantId), fullSyncRequested: true },
          { $unset: { fullSyncRequested: '' } },
        );
    },
  });
}
