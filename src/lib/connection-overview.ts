/**
 * What an operator sees about a connection, for the connections page and the CLI: the `connections` document (contract
 * §4, the dashboard mirror) overlaid with the live `status` query of the workflow when it answers in time, plus the
 * latest `sync_runs` per partition when the workflow cannot be asked. Never contains a secret: the status query and the
 * connections document carry none, and we read nothing from the token collection.
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import {
  connectionWorkflowId,
  statusQuery,
  type ConnectionState,
  type ConnectionStatus,
  type PartitionSyncSummary,
  type Provider,
} from '../messages.js';
import { connectionsCollection, type ConnectionDoc } from './connection-doc.js';
import { COLLECTIONS, type Mongo } from './mongo.js';

export type { ConnectionDoc } from './connection-doc.js';

/** The fields the overview shares with the `status` query, declared there. */
type StatusFields =
  | 'tenantId'
  | 'provider'
  | 'authorizationUrl'
  | 'tokenVersion'
  | 'accessTokenExpiresAt'
  | 'refreshTokenExpiresAt'
  | 'lastRefreshAt'
  | 'partitions'
  | 'lastSync';

export interface ConnectionOverview extends Pick<ConnectionStatus, StatusFields> {
  workflowId: string;
  /** The status query's state, else the mirror's, else 'unknown'. */
  state: ConnectionState | string;
  /** The status query's `Reason`, else the mirror's (a string read from MongoDB). */
  reason: string | null;
  /** Null when the workflow did not answer. */
  refreshCount: number | null;
  lastSyncAt: string | null;
  updatedAt: string | null;
  /** Where state/tokens came from: the live workflow, or only the MongoDB mirror (workflow closed, no worker, timeout). */
  source: 'workflow' | 'mongodb';
  /** Customer documents in MongoDB for this connection (null when not counted). */
  customers: number | null;
}

interface SyncRunDoc {
  _id: string;
  partitionId: string;
  mode?: 'incremental' | 'full';
  status: 'running' | 'succeeded' | 'failed';
  startedAt?: Date;
  finishedAt?: Date | null;
  pages?: number;
  fetched?: number;
  upserted?: number;
  modified?: number;
  deleted?: number;
  quarantined?: number;
  error?: string | null;
}

export interface OverviewDeps {
  client: Client;
  mongo: Mongo;
}

const iso = (v: Date | string | null | undefined): string | null => {
  if (v === null || v === undefined) return null;
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
};

/** Asks the workflow for its status; null when it does not exist or does not answer within `timeoutMs`. */
export async function queryStatus(
  client: Client,
  workflowId: string,
  timeoutMs = 3_000,
): Promise<ConnectionStatus | null> {
  try {
    return await client.withDeadline(Date.now() + timeoutMs, () =>
      client.workflow.getHandle(workflowId).query(statusQuery),
    );
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    return null; // deadline exceeded (no worker), query failed: fall back to the MongoDB mirror
  }
}

async function lastRunsByPartition(
  mongo: Mongo,
  tenantId: string,
  provider: Provider,
): Promise<Record<string, PartitionSyncSummary>> {
  // Small per-connection scan (FerretDB indexes only `_id`); a connection has few runs per hour and we cap the read.
  const runs = await mongo
    .collection<SyncRunDoc>(COLLECTIONS.syncRuns)
    .find({ tenantId, provider, status: { $in: ['succeeded', 'failed'] } })
    .sort({ finishedAt: -1 })
    .limit(200)
    .toArray();
  const out: Record<string, PartitionSyncSummary> = {};
  for (const r of runs) {
    if (out[r.partitionId] || !r.finishedAt) continue;
    out[r.partitionId] = {
      finishedAt: r.finishedAt.toISOString(),
      status: r.status === 'running' ? 'failed' : r.status,
      mode: r.mode ?? 'incremental',
      fetched: r.fetched ?? 0,
      upserted: r.upserted ?? 0,
      modified: r.modified ?? 0,
      deleted: r.deleted ?? 0,
      quarantined: r.quarantined ?? 0,
      ...(r.error ? { error: r.error } : {}),
    };
  }
  return out;
}

async function countCustomers(mongo: Mongo, tenantId: string, provider: Provider): Promise<number | null> {
  try {
    return await mongo
      .collection(COLLECTIONS.customers)
      .countDocuments({ tenantId, provider, deleted: { $ne: true } }, { maxTimeMS: 3_000 });
  } catch {
    return null;
  }
}

export async function overviewFrom(
  deps: OverviewDeps,
  doc: ConnectionDoc | null,
  status: ConnectionStatus | null,
  opts: { countCustomers?: boolean } = {},
): Promise<ConnectionOverview | null> {
  const base = status ?? doc;
  if (!base) return null;
  const tenantId = base.tenantId;
  const provider = base.provider;
  const lastSync: Record<string, PartitionSyncSummary> =
    status && Object.keys(status.lastSync ?? {}).length > 0
      ? status.lastSync
      : await lastRunsByPartition(deps.mongo, tenantId, provider).catch(() => ({}));
  const lastSyncAt =
    iso(doc?.lastSyncAt) ??
    Object.values(lastSync)
      .map((s) => s.finishedAt)
      .sort()
      .at(-1) ??
    null;
  return {
    workflowId: connectionWorkflowId(provider, tenantId),
    tenantId,
    provider,
    state: status?.state ?? doc?.state ?? 'unknown',
    reason: status ? status.reason : (doc?.reason ?? null),
    authorizationUrl: status?.authorizationUrl ?? null,
    tokenVersion: status?.tokenVersion ?? null,
    accessTokenExpiresAt: status?.accessTokenExpiresAt ?? iso(doc?.accessTokenExpiresAt),
    refreshTokenExpiresAt: status?.refreshTokenExpiresAt ?? iso(doc?.refreshTokenExpiresAt),
    lastRefreshAt: status?.lastRefreshAt ?? iso(doc?.lastRefreshAt),
    refreshCount: status?.refreshCount ?? null,
    partitions: status?.partitions ?? doc?.partitions ?? [],
    lastSync,
    lastSyncAt,
    updatedAt: iso(doc?.updatedAt),
    source: status ? 'workflow' : 'mongodb',
    customers: opts.countCustomers === false ? null : await countCustomers(deps.mongo, tenantId, provider),
  };
}

/** Every connection in the `connections` collection, newest first, each overlaid with its live status. */
export async function listConnections(
  deps: OverviewDeps,
  opts: { live?: boolean; countCustomers?: boolean; limit?: number } = {},
): Promise<ConnectionOverview[]> {
  const docs = await connectionsCollection(deps.mongo)
    .find({})
    .limit(opts.limit ?? 500)
    .toArray();
  docs.sort((a, b) => a.tenantId.localeCompare(b.tenantId) || a.provider.localeCompare(b.provider));
  const out = await Promise.all(
    docs.map(async (doc) => {
      const status =
        opts.live === false || doc.state === 'disconnected' ? null : await queryStatus(deps.client, doc._id);
      return overviewFrom(deps, doc, status, opts);
    }),
  );
  return out.filter((o): o is ConnectionOverview => o !== null);
}

/** One connection by tenant and provider: the document and/or the workflow; null when neither exists. */
export async function getConnection(
  deps: OverviewDeps,
  provider: Provider,
  tenantId: string,
  opts: { countCustomers?: boolean } = {},
): Promise<ConnectionOverview | null> {
  const id = connectionWorkflowId(provider, tenantId);
  const [doc, status] = await Promise.all([
    connectionsCollection(deps.mongo).findOne({ _id: id }),
    queryStatus(deps.client, id),
  ]);
  return overviewFrom(deps, doc, status, opts);
}
