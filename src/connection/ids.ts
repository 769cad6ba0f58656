/**
 * Every deterministic id of the service, in one place: Temporal ids (contract §3) and the MongoDB `_id`s (contract §4,
 * then the internal collections of `COLLECTIONS`, src/lib/mongo.ts). Every write is a point operation on one of these.
 * Sandbox-safe (type imports only): workflows build the same ids. The formats are part of the contract and of stored
 * data: never change one.
 */
import type { Provider } from '../messages.js';

export interface ConnectionKey {
  tenantId: string;
  provider: Provider;
}

export interface PartitionKey extends ConnectionKey {
  partitionId: string;
}

// ---- Temporal (contract §3) ----

/** The `tenantConnection` workflow id; also the `_id` of its `connections` and `tokens` documents (contract §4). */
export const connectionWorkflowId = (provider: Provider, tenantId: string) => `sage-connection:${provider}:${tenantId}`;
/** The connection's sync Schedule. */
export const syncScheduleId = (provider: Provider, tenantId: string) => `sage-sync:${provider}:${tenantId}`;

// ---- contract §4 ----

/** `customers`: `{provider}:{tenantId}:{partitionId}:{externalId}`. */
export const customerId = (k: PartitionKey, externalId: string) => `${customerIdPrefix(k)}${externalId}`;
/** Prefix shared by every customer `_id` of a partition (for `_id` range scans, the indexed path on FerretDB). */
export const customerIdPrefix = (k: PartitionKey) => `${partitionKeyId(k)}:`;
/** `sync_runs`: `{syncWorkflowId}:{partitionId}`. */
export const syncRunId = (syncWorkflowId: string, partitionId: string) => `${syncWorkflowId}:${partitionId}`;
/**
 * `quarantine`: the customer's `_id`, `:` and a hash of the rejected payload (`payloadHash`, src/sync/hash.ts). A
 * rejected record without a usable id is still keyed per partition (`?`); the hash keeps entries distinct.
 */
export const quarantineId = (k: PartitionKey, externalId: string | null, payloadHash: string) =>
  `${customerId(k, externalId ?? '?')}:${payloadHash}`;

// ---- internals ----

/** `{provider}:{tenantId}`: a connection's change-sequence counter (`change_seq`) and announcements. */
export const connectionKey = (k: ConnectionKey) => `${k.provider}:${k.tenantId}`;
/** `{provider}:{tenantId}:{partitionId}`: one partition's `sync_state` and `change_reservations` documents. */
export const partitionKeyId = (k: PartitionKey) => `${connectionKey(k)}:${k.partitionId}`;
export const syncStateId = partitionKeyId;
export const reservationId = partitionKeyId;
/** `change_seq_blocks`: block `n` of a connection's sequence. */
export const changeSeqBlockId = (k: ConnectionKey, n: number) => `${connectionKey(k)}#${n}`;
/** `change_announcements`: what a connection has announced so far. */
export const changeAnnouncedId = (k: ConnectionKey) => `${connectionKey(k)}#announced`;
/** `sync_seen`: page `page` of the ids a full run saw (`runKey` = its `syncRunId`). */
export const seenPageId = (runKey: string, page: number) => `${runKey}:${page}`;
/** `token_claims`: the claim of token version `version` of connection `id` (claim generation `gen`). */
export const versionClaimId = (id: string, gen: string, version: number) => `${id}#${gen}#v${version}`;
/** `token_claims`: the `n`-th refresh lease taken on `fromVersion`. */
export const leaseClaimId = (id: string, gen: string, fromVersion: number, n: number) =>
  `${versionClaimId(id, gen, fromVersion)}#lease${n}`;
