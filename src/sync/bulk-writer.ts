/**
 * Writes one page of customers: one `find({_id: {$in}})` for the stored hashes, then one unordered `bulkWrite` of
 * `updateOne` upserts for the new and changed records only. (Filtering on `contentHash: {$ne}` inside an upsert would
 * try to insert a second document with the same `_id` when the hash matches: a duplicate-key error, not a no-op.)
 */
import type { Collection } from 'mongodb';
import type { CustomerDoc } from './documents.js';

export interface WriteCounts {
  upserted: number;
  modified: number;
  unchanged: number;
}

type Stored = { _id: string; contentHash?: string; deleted?: boolean };

export async function writeCustomers(coll: Collection<CustomerDoc>, docs: CustomerDoc[]): Promise<WriteCounts> {
  if (docs.length === 0) return { upserted: 0, modified: 0, unchanged: 0 };
  // The same record can appear twice in one page (Sage re-serving a page, ties in an overlap): last one wins.
  const byId = new Map<string, CustomerDoc>();
  for (const d of docs) byId.set(d._id, d);
  const stored = (await coll
    .find({ _id: { $in: [...byId.keys()] } }, { projection: { contentHash: 1, deleted: 1 } })
    .toArray()) as unknown as Stored[];
  const known = new Map(stored.map((s) => [s._id, s]));
  const changed = [...byId.values()].filter((d) => {
    const s = known.get(d._id);
    return !s || s.contentHash !== d.contentHash || s.deleted === true;
  });
  if (changed.length === 0) return { upserted: 0, modified: 0, unchanged: byId.size };
  const res = await coll.bulkWrite(
    changed.map(({ _id, ...fields }) => ({ updateOne: { filter: { _id }, update: { $set: fields }, upsert: true } })),
    { ordered: false },
  );
  return { upserted: res.upsertedCount, modified: res.modifiedCount, unchanged: byId.size - changed.length };
}
