/**
 * Message definitions shared by clients (web, CLI, activities, tests) and workflows: names, input schemas and result
 * shapes of contract §3. The string names are a wire contract and never change. This module is imported into the
 * workflow sandbox, so it may only import pure code (zod, @temporalio/workflow definitions).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import { SAGE200_DEFAULT_EDITION, SAGE200_EDITIONS } from './providers/sage200/editions.js';
import type { Reason } from './connection/reasons.js';

export const PROVIDERS = ['sage-accounting', 'sage-200'] as const;
export const Provider = z.enum(PROVIDERS);
export type Provider = z.infer<typeof Provider>;

export const TenantId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'tenantId must match ^[A-Za-z0-9_.-]{1,64}$');

/** The workflow and schedule ids live with every other id (src/connection/ids.ts). */
export { connectionWorkflowId, syncScheduleId } from './connection/ids.js';

/** Input of `tenantConnection`, as typed in the Temporal UI "Start Workflow" form (contract §3). */
export const TenantConnectionInput = z
  .object({
    tenantId: TenantId,
    provider: Provider,
    sync: z
      .object({
        intervalMinutes: z
          .number()
          .int()
          .min(1)
          .max(7 * 24 * 60)
          .default(60),
      })
      .strict()
      .default({ intervalMinutes: 60 }),
    // Bounded like the state they end up in (carried across continue-as-new and validated there again).
    businessIds: z.array(z.string().min(1).max(256)).max(1_000).optional(),
    sage200: z
      .object({
        edition: z.enum(SAGE200_EDITIONS).default(SAGE200_DEFAULT_EDITION),
        sites: z
          .array(
            z
              .object({
                siteId: z.string().min(1).max(256).optional(),
                companyId: z.string().min(1).max(256).optional(),
              })
              .strict(),
          )
          .max(1_000)
          .optional(),
      })
      .strict()
      .optional(),
    notifyWebhookUrl: z.url().max(2_048).optional(),
  })
  .strict();
export type TenantConnectionInput = z.input<typeof TenantConnectionInput>;

export const CONNECTION_STATES = [
  'awaiting_authorization',
  'connected',
  'reauthorization_required',
  'disconnected',
] as const;
export type ConnectionState = (typeof CONNECTION_STATES)[number];

/** A business (Sage Accounting) or company + site (Sage 200) being synced. `id` is the contract's partitionId. */
export interface Partition {
  id: string;
  name: string;
  /** Sage 200 only: sent as X-Site with every call. */
  siteId?: string;
}

export interface PartitionSyncSummary {
  finishedAt: string;
  status: 'succeeded' | 'failed' | 'skipped';
  mode: 'incremental' | 'full';
  fetched: number;
  upserted: number;
  modified: number;
  deleted: number;
  quarantined: number;
  error?: string;
  /** Machine code of why a failed partition was refused by Sage (e.g. `subscription_inactive`); absent when it synced. */
  reason?: string;
  /** Change-sequence horizon right after this partition finished (contract §4; safe to read `changeSeq` up to it). */
  changeHorizon?: number;
}

/** Validates `syncReport` payloads (a signal is input: bounded strings and counts). */
export const PartitionSyncSummarySchema = z
  .object({
    finishedAt: z.string().max(64),
    status: z.enum(['succeeded', 'failed', 'skipped']),
    mode: z.enum(['incremental', 'full']),
    fetched: z.number().int().min(0),
    upserted: z.number().int().min(0),
    modified: z.number().int().min(0),
    deleted: z.number().int().min(0),
    quarantined: z.number().int().min(0),
    // Long error texts are cut rather than refused: the summary is still worth showing.
    error: z
      .string()
      .transform((e) => (e.length > 1_000 ? `${e.slice(0, 1_000)}…` : e))
      .optional(),
    reason: z.string().max(64).optional(),
    changeHorizon: z.number().int().min(0).optional(),
  })
  // Unknown keys are stripped, not refused: a sync that reports more counts later still updates lastSync.
  .strip();
export const SyncReportInput = z
  .object({
    partitionId: z.string().min(1).max(256),
    summary: PartitionSyncSummarySchema,
    /** The full-sync request (`syncPlan.fullSyncRequest.id`) the run was planned with, if any. */
    fullSyncRequestId: z.string().min(1).max(256).optional(),
  })
  .strict();
export type SyncReportInput = z.infer<typeof SyncReportInput>;

/**
 * The last re-consent of a connection that already had partitions. `userChanged`: a different Sage user granted it
 * (known when Sage names the user). `unreachablePartitions`: the connection's partitions the new grant does not reach.
 */
export interface ReconsentRecord {
  at: string;
  outcome: 'accepted' | 'refused';
  reason: Reason | null;
  previousSageUserId: string | null;
  sageUserId: string | null;
  userChanged: boolean;
  unreachablePartitions: string[];
}

/** Result of the `status` query. Never contains a secret. Dates are ISO strings. */
export interface ConnectionStatus {
  tenantId: string;
  provider: Provider;
  state: ConnectionState;
  reason: Reason | null;
  authorizationUrl: string | null;
  tokenVersion: number | null;
  accessTokenExpiresAt: string | null;
  refreshTokenExpiresAt: string | null;
  lastRefreshAt: string | null;
  refreshCount: number;
  partitions: Partition[];
  lastSync: Record<string, PartitionSyncSummary>;
  lastError?: string | null;
  /** Result of the last connection test (partitions listed right after consent and on later checks). */
  connection?: { available: boolean; reason: Reason | null; checkedAt: string; leadBusinessId?: string | null } | null;
  /** When the workflow next wakes on its own (keep-alive refresh, consent URL renewal); null when it only waits. */
  nextWakeAt?: string | null;
  /** The Sage user who granted the current consent, when Sage names it (Sage Accounting). */
  sageUserId?: string | null;
  /** The last re-consent of a connection that already had partitions (accepted or refused, by which user). */
  lastReconsent?: ReconsentRecord | null;
}

/** A `syncNow { mode: "full" }` the connection has not yet seen honoured by a full run of every partition. */
export const FullSyncRequestSchema = z
  .object({ id: z.string().min(1).max(256), requestedAt: z.string().max(64) })
  .strict();
export type FullSyncRequest = z.infer<typeof FullSyncRequestSchema>;

/**
 * Result of the internal `syncPlan` query: what a sync run needs from its connection to plan (the connection workflow
 * is the one source of it; the `connections` document is only a copy for readers). `edition`: Sage 200 only.
 */
export const SyncPlanAnswerSchema = z
  .object({
    state: z.enum(CONNECTION_STATES),
    reason: z.string().max(256).nullable(),
    partitions: z.array(z.object({ id: z.string().min(1), name: z.string(), siteId: z.string().optional() }).strict()),
    edition: z.enum(SAGE200_EDITIONS).optional(),
    fullSyncRequest: FullSyncRequestSchema.nullable(),
  })
  .strict();
export type SyncPlanAnswer = z.infer<typeof SyncPlanAnswerSchema>;

export const CompleteAuthorizationInput = z
  .object({ code: z.string().min(1), state: z.string().min(1), country: z.string().optional() })
  .strict();
export type CompleteAuthorizationInput = z.infer<typeof CompleteAuthorizationInput>;

export const GetAccessTokenInput = z
  .object({
    minValidSeconds: z.number().int().min(0).max(3600).optional(),
    rejectedTokenVersion: z.number().int().min(0).optional(),
  })
  .strict();
export type GetAccessTokenInput = z.infer<typeof GetAccessTokenInput>;
export interface AccessTokenLease {
  tokenVersion: number;
  expiresAt: string;
}

export const SyncNowInput = z.object({ mode: z.enum(['incremental', 'full']).optional() }).strict();
export type SyncNowInput = z.infer<typeof SyncNowInput>;
export const DisconnectInput = z.object({ revoke: z.boolean().optional() }).strict();
export type DisconnectInput = z.infer<typeof DisconnectInput>;

export const statusQuery = defineQuery<ConnectionStatus>('status');
export const completeAuthorizationUpdate = defineUpdate<ConnectionStatus, [CompleteAuthorizationInput]>(
  'completeAuthorization',
);
export const getAccessTokenUpdate = defineUpdate<AccessTokenLease, [GetAccessTokenInput]>('getAccessToken');
export const syncNowSignal = defineSignal<[SyncNowInput]>('syncNow');
export const disconnectSignal = defineSignal<[DisconnectInput]>('disconnect');
/** Internal (sync activity → workflow): what a sync run plans from (state, partitions, edition, full-sync request). */
export const syncPlanQuery = defineQuery<SyncPlanAnswer>('syncPlan');
/** Internal: a finished sync run reports its per-partition summary to the connection so `status.lastSync` is current. */
export const syncReportSignal = defineSignal<[SyncReportInput]>('syncReport');

/**
 * Internal (web → workflow): mints a fresh consent URL with a new single-use `state` (the `/connect` route calls it so
 * every click gets its own short-lived state). Not part of the public contract.
 */
export const beginAuthorizationUpdate = defineUpdate<
  { authorizationUrl: string; expiresAt: string },
  [{ country?: string }]
>('beginAuthorization');
/** Internal (web → workflow): Sage redirected back with `?error=` (e.g. `access_denied`) for one of our states. */
export const authorizationDeniedSignal =
  defineSignal<[{ state: string; error: string; description?: string }]>('authorizationDenied');

/** Search attributes of contract §3 (Keyword), registered on the namespace by `infra:up`. */
export const TenantIdSearchAttribute = defineSearchAttributeKey('TenantId', SearchAttributeType.KEYWORD);
export const SageProviderSearchAttribute = defineSearchAttributeKey('SageProvider', SearchAttributeType.KEYWORD);
export const ConnectionStateSearchAttribute = defineSearchAttributeKey('ConnectionState', SearchAttributeType.KEYWORD);

/** Input of `syncCustomers` (started by the schedule; contract §3). */
export const SyncCustomersInput = z
  .object({ tenantId: TenantId, provider: Provider, mode: z.enum(['incremental', 'full']).optional() })
  .strict();
export type SyncCustomersInput = z.infer<typeof SyncCustomersInput>;

/** Turns a zod error into one line that names each bad field. */
export function describeZodError(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`).join('; ');
}
