/**
 * `syncCustomers { tenantId, provider, mode? }` (contract §3), started by the connection's Schedule or by hand.
 * Plans the partitions (businesses / sites) and their modes, syncs them in parallel (one heartbeating activity each,
 * resumable from its per-page checkpoint), and reports each partition's summary to the connection workflow
 * (`syncReport`) so `status.lastSync` is current. Reauthorization ends the run as skipped, not failed-and-retrying.
 */
import {
  getExternalWorkflowHandle,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { CustomersChangedEvent, PartitionChangeCounts } from '../sync/announce.js';
import {
  connectionWorkflowId,
  describeZodError,
  SyncCustomersInput,
  syncReportSignal,
  type PartitionSyncSummary,
} from '../messages.js';
import { isAccessReason, type AccessReason } from '../connection/reasons.js';
import type { FailureInfo } from '../connection/decisions.js';
import { ErrorTypes } from '../error-types.js';
import { failureInfo, invalidInput, syncFailed } from './failures.js';
import { deliverCustomersChanged } from './notify-changes.js';

/** Marks the full-sync request kept by the connection workflow (no `clearFullSyncRequest` activity any more). */
const FULL_SYNC_REQUEST_IN_CONNECTION_PATCH = 'full-sync-request-in-connection';

/** Error types after which retrying the same partition run cannot help. */
const NON_RETRYABLE = [
  ErrorTypes.ReauthorizationRequired,
  ErrorTypes.InvalidInput,
  ErrorTypes.PartitionMismatch,
  ErrorTypes.SageProtocol,
  ErrorTypes.SageAccessDenied,
];

const {
  planCustomerSync,
  recordPartitionSyncFailure,
  clearFullSyncRequest,
  announceCustomerChanges,
  connectionWebhookUrl,
} = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
});

export interface SyncCustomersResult {
  status: 'succeeded' | 'failed' | 'skipped';
  reason?: string;
  partitions: Record<string, PartitionSyncSummary>;
}

/** The access-problem code a partition failure carries (`SageAccessDenied` details), if any. */
function accessReasonOf(f: FailureInfo): AccessReason | undefined {
  return f.type === ErrorTypes.SageAccessDenied && f.reason !== null && isAccessReason(f.reason) ? f.reason : undefined;
}

/**
 * After every partition finished (succeeded or not): the run's change range, and a `customers.changed` event when it
 * changed anything, delivered by its own abandoned workflow (see ./notify-changes.ts).
 */
async function announceChanges(
  input: SyncCustomersInput,
  syncWorkflowId: string,
  results: [string, PartitionSyncSummary][],
): Promise<void> {
  const partitions: Record<string, PartitionChangeCounts> = Object.fromEntries(
    results.map(([id, s]) => [id, { created: s.upserted, updated: s.modified, deleted: s.deleted }]),
  );
  const announced = await announceCustomerChanges({
    tenantId: input.tenantId,
    provider: input.provider,
    syncWorkflowId,
    partitions,
  });
  if (!announced.changed) return;
  const url = await connectionWebhookUrl({ tenantId: input.tenantId, provider: input.provider });
  const event: CustomersChangedEvent = {
    // The run id is a UUID: with the workflow id it is never reused, also if a workflow id is started again.
    id: `customers.changed:${syncWorkflowId}:${workflowInfo().runId}`,
    type: 'customers.changed',
    tenantId: input.tenantId,
    provider: input.provider,
    runId: syncWorkflowId,
    partitions,
    fromSeq: announced.fromSeq,
    toSeq: announced.toSeq,
  };
  try {
    await startChild(deliverCustomersChanged, {
      workflowId: event.id,
      args: [{ event, ...(url ? { url } : {}) }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
  } catch (err) {
    // Already started (same event id): it is being delivered.
    log.warn('customers.changed delivery not started', { eventId: event.id, error: failureInfo(err).message });
  }
}

export async function syncCustomers(rawInput: SyncCustomersInput): Promise<SyncCustomersResult> {
  const parsed = SyncCustomersInput.safeParse(rawInput);
  if (!parsed.success) throw invalidInput(`invalid syncCustomers input: ${describeZodError(parsed.error)}`);
  const input = parsed.data;
  const syncWorkflowId = workflowInfo().workflowId;

  const plan = await planCustomerSync(input);
  if (plan.skipped) {
    log.info('sync skipped', { reason: plan.skipped });
    return { status: 'skipped', reason: plan.skipped, partitions: {} };
  }

  const { syncCustomerPartition } = proxyActivities<Activities>({
    // A full run of a large partition takes a while; liveness comes from the heartbeat, not from this bound.
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: `${plan.heartbeatTimeoutSeconds} seconds`,
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '5 minutes',
      maximumAttempts: 8,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
  const connection = getExternalWorkflowHandle(connectionWorkflowId(input.provider, input.tenantId));

  const results = await Promise.all(
    plan.partitions.map(async (p): Promise<[string, PartitionSyncSummary]> => {
      let summary: PartitionSyncSummary;
      try {
        summary = await syncCustomerPartition({
          ...input,
          partition: p.partition,
          mode: p.mode,
          syncWorkflowId,
          ...(plan.edition ? { edition: plan.edition } : {}),
        });
      } catch (err) {
        const failure = failureInfo(err);
        const reauth = failure.type === ErrorTypes.ReauthorizationRequired;
        const error = failure.message;
        const reason = accessReasonOf(failure);
        await recordPartitionSyncFailure({
          ...input,
          partitionId: p.partition.id,
          mode: p.mode,
          syncWorkflowId,
          error: reauth ? `skipped: ${error}` : error,
          ...(reason ? { reason } : {}),
        });
        summary = {
          finishedAt: new Date().toISOString(),
          status: reauth ? 'skipped' : 'failed',
          mode: p.mode,
          fetched: 0,
          upserted: 0,
          modified: 0,
          deleted: 0,
          quarantined: 0,
          error,
          ...(reason ? { reason } : {}),
        };
      }
      try {
        await connection.signal(syncReportSignal, {
          partitionId: p.partition.id,
          summary,
          ...(plan.fullSyncRequestId ? { fullSyncRequestId: plan.fullSyncRequestId } : {}),
        });
      } catch (err) {
        // The connection may have ended (disconnect) while we synced; the summary is still in sync_runs.
        log.warn('syncReport not delivered', { error: failureInfo(err).message });
      }
      return [p.partition.id, summary];
    }),
  );

  // Patched: runs started before this existed replay without the extra commands.
  if (patched('customers-changed-webhook')) await announceChanges(input, syncWorkflowId, results);
  const partitions = Object.fromEntries(results);
  const statuses = results.map(([, s]) => s.status);
  // The full-sync request lives in the connection workflow, which clears it from the reports above. Runs started
  // before that replay their call to the (now empty) activity that cleared the old `connections` flag.
  if (
    !patched(FULL_SYNC_REQUEST_IN_CONNECTION_PATCH) &&
    plan.fullSyncRequested &&
    results.every(([, s]) => s.status === 'succeeded' && s.mode === 'full')
  )
    await clearFullSyncRequest(input);
  if (statuses.includes('failed')) {
    const failed = results.filter(([, s]) => s.status === 'failed').map(([id, s]) => `${id}: ${s.error}`);
    // Visible as a failed run in the UI; the schedule's next run starts over from each partition's last watermark.
    throw syncFailed(`customer sync failed for ${failed.length} partition(s): ${failed.join('; ')}`, partitions);
  }
  const status = statuses.length > 0 && statuses.every((s) => s === 'skipped') ? 'skipped' : 'succeeded';
  return { status, partitions };
}
