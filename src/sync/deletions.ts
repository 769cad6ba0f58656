/**
 * Soft deletes (`deleted: true`, `deletedAt`): from a deletion feed (Sage Accounting `deleted_since`) and from full
 * reconciliation, which flags what a run that finished WITHOUT error no longer saw. Documents are never removed.
 */
import type { SyncCollections } from './bulk-writer.js';
import type { ChangeStamper } from './change-seq.js';
import { customerId, customerIdPrefix, type PartitionKey } from './documents.js';

/**
 * Flags the given customer `_id`s as deleted, in one unordered bulk; ids that are unknown or already deleted are no-ops.
 * `stamper`: each flag carries a fresh `changeSeq` (a no-op leaves its number unused: a gap, never a reuse).
 */
export async function flagDeleted(
  colls: SyncCollections,
  ids: string[],
  now: Date,
  deletedAt?: (id: string) => Date | null,
  stamper?: ChangeStamper,
): Promise<number> {
  if (ids.length === 0) return 0;
  let flagged = 0;
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const seqs = stamper ? await stamper.take(chunk.length) : null;
    const stamp = (j: number) => (seqs === null ? {} : { changeSeq: seqs[j]!, changedAt: now });
    const res = await colls.customers.bulkWrite(
      chunk.map((_id, j) => ({
        updateOne: {
          filter: { _id, deleted: false },
          update: { $set: { deleted: true, deletedAt: deletedAt?.(_id) ?? now, syncedAt: now, ...stamp(j) } },
        },
      })),
      { ordered: false },
    );
    await colls.hashes.bulkWrite(
      chunk.map((_id) => ({ updateOne: { filter: { _id }, update: { $set: { d: true } } } })),
      { ordered: false },
    );
    flagged += res.modifiedCount;
  }
  return flagged;
}

export async function flagDeletedExternal(
  colls: SyncCollections,
  k: PartitionKey,
  refs: { externalId: string; deletedAt: Date | null }[],
  now: Date,
  stamper?: ChangeStamper,
): Promise<number> {
  const at = new Map(refs.map((r) => [customerId(k, r.externalId), r.deletedAt]));
  return flagDeleted(colls, [...at.keys()], now, (id) => at.get(id) ?? null, stamper);
}

/** Full reconciliation: the external ids of live customers (`liveIds`, customer `_id`s) the finished run did not see. */
export function unseenIds(k: PartitionKey, liveIds: string[], seenExternalIds: Set<string>): string[] {
  const prefix = customerIdPrefix(k);
  return liveIds.map((id) => id.slice(prefix.length)).filter((id) => !seenExternalIds.has(id));
}
