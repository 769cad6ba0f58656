/**
 * The `connections` collection (contract §4): one document per connection, `_id` = the connection workflow id, a copy
 * of the workflow's status for readers (connections page, CLI, metrics, downstream dashboards). Nothing decides from it:
 * the sync plans from the workflow's `syncPlan` query, the token read path only takes a fast path when it says
 * connected (and the token store's refresh marker still sends callers of a revoked grant to the workflow).
 *
 * This module is the one writer: the three writes below are the only code that changes the collection, each a point
 * operation on `_id`, and `ConnectionDoc` is the one declaration of the document that every reader imports.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionState, Partition, Provider, ReconsentRecord } from '../messages.js';
import type { ConnectionMirror } from '../connection/machine.js';
import { COLLECTIONS, type Mongo } from './mongo.js';

/**
 * A `connections` document as stored. Optional fields: a document first created by a token-times write (right after
 * the code exchange) has no state mirror yet, and documents written by older versions lack the later fields.
 */
export interface ConnectionDoc {
  _id: string;
  tenantId: string;
  provider: Provider;
  state?: ConnectionState;
  reason?: string | null;
  partitions?: Partition[];
  accessTokenExpiresAt?: Date | null;
  refreshTokenExpiresAt?: Date | null;
  lastRefreshAt?: Date | null;
  /** Newest `finishedAt` of a partition sync (written by the partition sync itself, never moved back). */
  lastSyncAt?: Date | null;
  lastError?: string | null;
  connectionAvailable?: boolean | null;
  sageUserId?: string | null;
  lastReconsent?: ReconsentRecord | null;
  /** Sage 200 only: the edition the connection calls (readers; the sync asks the workflow). */
  sage200?: { edition?: string };
  /** Not written today (the per-connection webhook URL stays in the workflow input); read if a later version adds it. */
  notifyWebhookUrl?: string;
  updatedAt?: Date;
}

export const connectionsCollection = (mongo: Pick<Mongo, 'collection'>) =>
  mongo.collection<ConnectionDoc>(COLLECTIONS.connections);

const date = (v: string | null) => (v ? new Date(v) : null);

/** The workflow's state mirror (`mirrorConnection` activity): an upsert of every field it owns. */
export async function writeConnectionMirror(mongo: Pick<Mongo, 'collection'>, m: ConnectionMirror): Promise<void> {
  const { _id, lastSyncAt: _lastSyncAt, ...rest } = m;
  await connectionsCollection(mongo).updateOne(
    { _id },
    {
      $set: {
        ...rest,
        accessTokenExpiresAt: date(m.accessTokenExpiresAt),
        refreshTokenExpiresAt: date(m.refreshTokenExpiresAt),
        lastRefreshAt: date(m.lastRefreshAt),
        updatedAt: new Date(),
      },
      // The partition sync writes lastSyncAt itself, possibly before its report reaches the workflow: never back.
      $max: { lastSyncAt: date(m.lastSyncAt) },
    },
    { upsert: true },
  );
}

/** Token times after a refresh or a code exchange, written by that activity (no mirror activity needed for them). */
export async function writeTokenTimes(
  mongo: Pick<Mongo, 'collection'>,
  t: {
    _id: string;
    tenantId: string;
    provider: Provider;
    accessTokenExpiresAt: Date;
    refreshTokenExpiresAt: Date | null;
    obtainedAt: Date;
  },
): Promise<void> {
  await connectionsCollection(mongo).updateOne(
    { _id: t._id },
    {
      $set: {
        tenantId: t.tenantId,
        provider: t.provider,
        accessTokenExpiresAt: t.accessTokenExpiresAt,
        refreshTokenExpiresAt: t.refreshTokenExpiresAt,
        lastRefreshAt: t.obtainedAt,
        updatedAt: new Date(),
      },
    },
    { upsert: true },
  );
}

/**
 * `lastSyncAt` after a partition synced, from its own `finishedAt` (the value its `syncReport` carries), so the
 * connection workflow needs no mirror activity after each report. `$max`: partitions finish in any order. Never on a
 * disconnected connection's document, never creates one.
 */
export async function writeLastSyncAt(mongo: Pick<Mongo, 'collection'>, workflowId: string, at: Date): Promise<void> {
  const write = () =>
    connectionsCollection(mongo).updateOne(
      { _id: workflowId, state: { $ne: 'disconnected' } },
      { $max: { lastSyncAt: at }, $set: { updatedAt: new Date() } },
    );
  await write();
  // FerretDB applies an update to the document it read, without a lock between read and write: two partitions
  // finishing together (or the workflow's mirror) can write back an older lastSyncAt over ours (seen in CI: the
  // second run's newest finishedAt never reached the document). Read back after each racing writer's update has
  // had time to land, and write again while the document is behind us; `$max` keeps every retry harmless.
  for (const delayMs of [50, 250]) {
    await sleep(delayMs);
    const doc = await connectionsCollection(mongo).findOne(
      { _id: workflowId },
      { projection: { lastSyncAt: 1, state: 1 } },
    );
    if (!doc || doc.state === 'disconnected') return;
    if (doc.lastSyncAt instanceof Date && doc.lastSyncAt.getTime() >= at.getTime()) continue;
    await write();
  }
}
