/**
 * Activities of the `syncCustomers` workflow: plan the run (partitions and modes), sync one partition (heartbeating,
 * resumable from its checkpoint), and the bookkeeping around them.
 */
import { activityInfo, Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/common';
import { COLLECTIONS } from '../lib/mongo.js';
import { writeLastSyncAt } from '../lib/connection-doc.js';
import {
  countSyncAccessDenied,
  countSyncRecords,
  countSyncRun,
  observeSageResponse,
  recordSyncSucceeded,
} from '../lib/metrics.js';
import {
  connectionWorkflowId,
  SyncPlanAnswerSchema,
  syncPlanQuery,
  type Partition,
  type SyncPlanAnswer,
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
  /**
   * The connection's pending full-sync request this run honours (`syncPlan.fullSyncRequest.id`): each partition's
   * `syncReport` carries it, and the connection clears the request once every partition ran full with it.
   */
  fullSyncRequestId?: string;
  heartbeatTimeoutSeconds: number;
}

export interface SyncPartitionInput extends SyncTargetInput {
  partition: Partition;
  edition?: string;
  mode: SyncMode;
  syncWorkflowId: string;
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

  /**
   * The connection workflow answers what to plan from (`syncPlan`): it owns state, partitions, edition and the full-sync
   * request. The `connections` document is only a copy for readers: it can lag (the schedule's first run used to plan
   * before the consent's mirror write landed) and lose a concurrent partial write on FerretDB.
   */
  async function readConnection(t: SyncTargetInput): Promise<SyncPlanAnswer | null> {
    try {
      const answer = await deps.client.workflow
        .getHandle(connectionWorkflowId(t.provider, t.tenantId))
        .query(syncPlanQuery);
      return SyncPlanAnswerSchema.parse(answer);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  return mappingFailures({
    /** Which partitions to sync and in which mode (contract §7: first sync full; full on request or when due). */
    async planCustomerSync(input: SyncTargetInput & { mode?: SyncMode }): Promise<SyncPlan> {
      const conn = await readConnection(input);
      const request = conn?.fullSyncRequest ?? null;
      const base = {
        fullSyncRequested: request !== null,
        ...(request ? { fullSyncRequestId: request.id } : {}),
        heartbeatTimeoutSeconds: config.SYNC_HEARTBEAT_TIMEOUT_SECONDS,
      };
      if (!conn) return { ...base, skipped: 'connection_not_found', partitions: [] };
      if (conn.state !== 'connected') return { ...base, skipped: conn.reason ?? conn.state, partitions: [] };
      const now = new Date();
      const states = mongo.db.collection<SyncStateDoc>(COLLECTIONS.syncState);
      const partitions: PartitionPlan[] = [];
      for (const partition of conn.partitions) {
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
      const edition = defaultEdition ? (conn.edition ?? defaultEdition) : undefined;
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
        // syncReport carries), so the connection workflow need not run a mirror activity after every report.
        await writeLastSyncAt(
          mongo,
          connectionWorkflowId(input.provider, input.tenantId),
          new Date(result.summary.finishedAt),
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

    /**
     * Kept only for sync runs started before the full-sync request moved into the connection workflow (they replay
     * a call to it): nothing writes the old `connections.fullSyncRequested` flag any more and nothing reads it, so
     * there is nothing to clear. The connection clears its request from the runs' `syncReport`s.
     */
    async clearFullSyncRequest(_input: SyncTargetInput): Promise<void> {},
  });
}
