/**
 * Writes customers page by page, skipping unchanged records by content hash so `modified` counts real changes.
 *
 * Where the stored hashes come from depends on the run (measured on the local FerretDB 1.24, which pushes down only an
 * exact `_id` match: `_id: {$in}` and field queries are sequential scans of the whole collection):
 * - full run: ONE scan of the partition's `{_id, contentHash, deleted}` at the start (it also gives the deletion
 *   candidates), then nothing but in-memory lookups;
 * - incremental run: point `findOne({_id})` per record, a few in parallel (pages are small).
 * A page is then one unordered `bulkWrite`: `insertOne` for ids not stored yet (8× faster than an upsert on FerretDB),
 * `replaceOne` with upsert for changed ones. An insert that meets an existing `_id` (a stale view) is redone as a
 * replace, so the write stays idempotent. (Filtering an upsert on `contentHash: {$ne}` would instead try to insert a
 * second document with the same `_id` when the hash matches: a duplicate-key error, not a no-op.)
 */
import { MongoBulkWriteError, type AnyBulkWriteOperation, type Collection } from 'mongodb';
import type { CustomerDoc, PartitionKey } from './documents.js';

export interface WriteCounts {
  upserted: number;
  modified: number;
  unchanged: number;
}

export interface StoredHash {
  contentHash?: string;
  deleted?: boolean;
}

/** What the writer knows about stored documents. */
export interface HashView {
  get(ids: string[]): Promise<Map<string, StoredHash>>;
  /** Records what this run just wrote, so a record read twice (ties, re-served pages) is written once. */
  remember(docs: CustomerDoc[]): void;
}

/** Full runs: the partition's hashes, loaded with one scan. Also the source of deletion candidates. */
export class PreloadedHashes implements HashView {
  private constructor(readonly stored: Map<string, StoredHash>) {}
  static async load(coll: Collection<CustomerDoc>, k: PartitionKey): Promise<PreloadedHashes> {
    const stored = new Map<string, StoredHash>();
    const cursor = coll.find({ tenantId: k.tenantId, provider: k.provider, partitionId: k.partitionId }, { projection: { contentHash: 1, deleted: 1 } });
    for await (const d of cursor) stored.set(d._id, { contentHash: d.contentHash, deleted: d.deleted });
    return new PreloadedHashes(stored);
  }
  async get(ids: string[]): Promise<Map<string, StoredHash>> {
    const out = new Map<string, StoredHash>();
    for (const id of ids) {
      const s = this.stored.get(id);
      if (s) out.set(id, s);
    }
    return out;
  }
  remember(docs: CustomerDoc[]): void {
    for (const d of docs) this.stored.set(d._id, { contentHash: d.contentHash, deleted: false });
  }
  /** Live (not deleted) customer `_id`s as of the load plus this run's writes. */
  liveIds(): string[] {
    return [...this.stored].filter(([, s]) => s.deleted !== true).map(([id]) => id);
  }
}

/** Incremental runs: point lookups by `_id` (the indexed path everywhere), `concurrency` at a time. */
export class PointHashes implements HashView {
  constructor(
    private readonly coll: Collection<CustomerDoc>,
    private readonly concurrency = 16,
  ) {}
  async get(ids: string[]): Promise<Map<string, StoredHash>> {
    const out = new Map<string, StoredHash>();
    let next = 0;
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        const d = await this.coll.findOne({ _id: id }, { projection: { contentHash: 1, deleted: 1 } });
        if (d) out.set(id, { contentHash: d.contentHash, deleted: d.deleted });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, ids.length) }, worker));
    return out;
  }
  remember(): void {}
}

const DUPLICATE_KEY = 11000;

export async function writeCustomers(coll: Collection<CustomerDoc>, docs: CustomerDoc[], view: HashView): Promise<WriteCounts> {
  if (docs.length === 0) return { upserted: 0, modified: 0, unchanged: 0 };
  // The same record can appear twice in one page (Sage re-serving a page, ties in an overlap): last one wins.
  const byId = new Map<string, CustomerDoc>();
  for (const d of docs) byId.set(d._id, d);
  const stored = await view.get([...byId.keys()]);
  const ops: AnyBulkWriteOperation<CustomerDoc>[] = [];
  for (const d of byId.values()) {
    const s = stored.get(d._id);
    if (!s) ops.push({ insertOne: { document: d } });
    else if (s.contentHash !== d.contentHash || s.deleted === true) ops.push({ replaceOne: { filter: { _id: d._id }, replacement: d, upsert: true } });
  }
  if (ops.length === 0) return { upserted: 0, modified: 0, unchanged: byId.size };
  let upserted = 0;
  let modified = 0;
  try {
    const res = await coll.bulkWrite(ops, { ordered: false });
    upserted = res.insertedCount + res.upsertedCount;
    modified = res.modifiedCount;
  } catch (err) {
    if (!(err instanceof MongoBulkWriteError)) throw err;
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    if (errors.some((e) => e.code !== DUPLICATE_KEY)) throw err;
    upserted = err.result.insertedCount + err.result.upsertedCount;
    modified = err.result.modifiedCount;
    // Inserts that met an existing document (view was stale): replace them; count only real changes.
    const retry = errors.map((e) => ops[e.index]).flatMap((op) => (op && 'insertOne' in op ? [op.insertOne.document as CustomerDoc] : []));
    const again = await coll.bulkWrite(
      retry.map((d) => ({ replaceOne: { filter: { _id: d._id, $or: [{ contentHash: { $ne: d.contentHash } }, { deleted: true }] }, replacement: d } })),
      { ordered: false },
    );
    modified += again.modifiedCount;
  }
  view.remember([...byId.values()]);
  return { upserted, modified, unchanged: byId.size - ops.length };
}
