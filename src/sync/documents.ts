/**
 * The MongoDB documents of contract §4. Their deterministic `_id`s are built in `src/connection/ids.ts` (re-exported
 * here for the sync code); every write is a point operation on these ids.
 */
import { customerId, quarantineId as quarantineIdOfHash, type PartitionKey } from '../connection/ids.js';
import type { NormalizedCustomer } from '../providers/types.js';
import { payloadHash } from './hash.js';

export { customerId, customerIdPrefix, syncRunId, syncStateId, type PartitionKey } from '../connection/ids.js';

/** The `quarantine` `_id` of a rejected payload (`src/connection/ids.ts`, with the payload's hash). */
export const quarantineId = (k: PartitionKey, externalId: string | null, raw: unknown) =>
  quarantineIdOfHash(k, externalId, payloadHash(raw));

export interface CustomerDoc extends PartitionKey, NormalizedCustomer {
  _id: string;
  deleted: boolean;
  deletedAt: Date | null;
  syncedAt: Date;
  raw: unknown;
  /** Internal: hash of the raw record, so unchanged records are not rewritten. */
  contentHash: string;
  /** Contract §4: set by every write that changes what a reader sees (src/sync/change-seq.ts). */
  changeSeq?: number;
  changedAt?: Date;
}

/**
 * MongoDB (and FerretDB) refuse field names that start with `$` or contain `.` in stored documents, and Sage sends
 * `$path` in every item. As MongoDB's documentation recommends, those characters are replaced by their full-width
 * forms (U+FF04 `＄`, U+FF0E `．`); everything else in `raw` is exactly as received.
 */
export function storableRaw(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(storableRaw);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k.replace(/^\$/, '\uFF04').replace(/\./g, '\uFF0E')] = storableRaw(v);
  }
  return out;
}

export function buildCustomerDoc(
  k: PartitionKey,
  customer: NormalizedCustomer,
  raw: unknown,
  hash: string,
  now: Date,
): CustomerDoc {
  return {
    _id: customerId(k, customer.externalId),
    tenantId: k.tenantId,
    provider: k.provider,
    partitionId: k.partitionId,
    ...customer,
    deleted: false,
    deletedAt: null,
    syncedAt: now,
    raw: storableRaw(raw),
    contentHash: hash,
  };
}
