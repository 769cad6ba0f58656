/**
 * Writes customers page by page, skipping unchanged records by content hash so `modified` counts real changes.
 *
 * The hashes live twice: on the customer document (`contentHash`) and in the small internal collection
 * `customer_hashes` (`{_id: customer _id, p: partition, h: hash, d: deleted}`), because reading them back is the hot
 * path and, on the local FerretDB 1.24, its cost grows with document size: a projection is applied after the whole
 * ~3 KB customer is loaded (5,000 customers: ~17 s from `customers`, ~1 s from `customer_hashes`), and `_id: {$in}`
 * is a sequential scan. So:
 * - full run: ONE read of the partition's `customer_hashes` at the start (it also gives the deletion candidates), then
 *   nothing but in-memory lookups;
 * - incremental run: point `findOne({_id})` per record on `customer_hashes`, a few in parallel (pages are small).
 * The customer is always written before its hash entry, so a crash in between only costs a rewrite next time.
 * A page is then one unordered `bulkWrite`: `insertOne` for ids not stored yet (8× faster than an upsert on FerretDB),
 * `replaceOne` with upsert for changed ones. An insert that meets an existing `_id` (a stale view) is redone as a
 * replace, so the write stays idempotent. (Filtering an upsert on `contentHash: {$ne}` would instead try to insert a
 * second document with the same `_id` when the hash matches: a duplicate-key error, not a no-op.)
 */
import { MongoBulkWriteError, type AnyBulkWriteOperation, type Collection } from 'mongodb';
import { COLLECTIONS } from '../lib/mongo.js';
import type { ChangeStamper } from './change-seq.js';
import { customerIdPrefix, type CustomerDoc, type PartitionKey } from './documents.js';

export const CUSTOMER_HASHES = COLLECTIONS.customerHashes;

/** Internal: one small document per customer, `_id` = the customer's `_id`. */
export interface HashDoc {
  _id: string;
  /** The partition (`{provider}:{tenantId}:{partitionId}:`), for the one read per full run. */
  p: string;
  h: string;
  d: boolean;
}

export interface SyncCollections {
  customers: Collection<CustomerDoc>;
  hashes: Collection<HashDoc>;
}

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
  static async load(hashes: Collection<HashDoc>, k: PartitionKey): Promise<PreloadedHashes> {
    const stored = new Map<string, StoredHash>();
    for (const d of await hashes.find({ p: customerIdPrefix(k) }).toArray())
      stored.set(d._id, { contentHash: d.h, deleted: d.d });
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
  forgetDeleted(ids: string[]): void {
    for (const id of ids) {
      const s = this.stored.get(id);
      if (s) s.deleted = true;
    }
  }
  /** Live (not deleted) customer `_id`s as of the load plus this run's writes. */
  liveIds(): string[] {
    return [...this.stored].filter(([, s]) => s.deleted !== true).map(([id]) => id);
  }
}

/** Incremental runs: point lookups by `_id` (the indexed path everywhere), `concurrency` at a time. */
export class PointHashes implements HashView {
  constructor(
    private readonly hashes: Collection<HashDoc>,
    private readonly concurrency = 16,
  ) {}
  async get(ids: string[]): Promise<Map<string, StoredHash>> {
    const out = new Map<string, StoredHash>();
    let next = 0;
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        const d = await this.hashes.findOne({ _id: id });
        if (d) out.set(id, { contentHash: d.h, deleted: d.d });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, ids.length) }, worker));
    return out;
  }
  remember(): void {}
}

const DUPLICATE_KEY = 11000;

/**
 * True only for a bulk error made of duplicate-key write errors. A `MongoBulkWriteError` with no write errors at all
 * (seen while MongoDB is down) is not one: `[].every()` would say yes, and the redo would be an empty batch.
 */
function duplicateKeyOnly(err: unknown): err is MongoBulkWriteError {
  if (!(err instanceof MongoBulkWriteError)) return false;
  const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
  return errors.length > 0 && errors.every((e) => e != null && e.code === DUPLICATE_KEY);
}

/** Hash entries after their customers: inserts for new ids (fast path), replaces otherwise; a stale insert is redone. */
async function writeHashes(
  hashes: Collection<HashDoc>,
  docs: CustomerDoc[],
  isNew: (id: string) => boolean,
): Promise<void> {
  const entry = (d: CustomerDoc): HashDoc => ({ _id: d._id, p: customerIdPrefix(d), h: d.contentHash, d: false });
  const replace = (d: CustomerDoc) => ({ replaceOne: { filter: { _id: d._id }, replacement: entry(d), upsert: true } });
  const ops = docs.map((d) => (isNew(d._id) ? { insertOne: { document: entry(d) } } : replace(d)));
  try {
    await hashes.bulkWrite(ops, { ordered: false });
  } catch (err) {
    if (!duplicateKeyOnly(err)) throw err;
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    await hashes.bulkWrite(
      errors.map((e) => replace(docs[e.index]!)),
      { ordered: false },
    );
  }
}

/**
 * `stamper`: gives every document actually written (new, changed, undeleted) a fresh `changeSeq` and `changedAt`
 * (contract §4); unchanged ones are skipped above and keep theirs. The content hash covers `raw` only, never these.
 */
export async function writeCustomers(
  colls: SyncCollections,
  docs: CustomerDoc[],
  view: HashView,
  stamper?: ChangeStamper,
): Promise<WriteCounts> {
  const coll = colls.customers;
  if (docs.length === 0) return { upserted: 0, modified: 0, unchanged: 0 };
  // The same record can appear twice in one page (Sage re-serving a page, ties in an overlap): last one wins.
  const byId = new Map<string, CustomerDoc>();
  for (const d of docs) byId.set(d._id, d);
  const stored = await view.get([...byId.keys()]);
  const ops: AnyBulkWriteOperation<CustomerDoc>[] = [];
  const written: CustomerDoc[] = [];
  for (const d of byId.values()) {
    const s = stored.get(d._id);
    if (!s) ops.push({ insertOne: { document: d } });
    else if (s.contentHash !== d.contentHash || s.deleted === true)
      ops.push({ replaceOne: { filter: { _id: d._id }, replacement: d, upsert: true } });
    else continue;
    written.push(d);
  }
  if (ops.length === 0) return { upserted: 0, modified: 0, unchanged: byId.size };
  if (stamper) {
    // The ops hold these same objects, so stamping them here stamps what is written (and any duplicate-key redo).
    const seqs = await stamper.take(written.length);
    written.forEach((d, i) => {
      d.changeSeq = seqs[i]!;
      d.changedAt = d.syncedAt;
    });
  }
  let upserted = 0;
  let modified = 0;
  try {
    const res = await coll.bulkWrite(ops, { ordered: false });
    upserted = res.insertedCount + res.upsertedCount;
    modified = res.modifiedCount;
  } catch (err) {
    if (!duplicateKeyOnly(err)) throw err;
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    upserted = err.result.insertedCount + err.result.upsertedCount;
    modified = err.result.modifiedCount;
    // Inserts that met an existing document (view was stale), or upserts that raced another writer (or a write retried
    // after a lost connection): the document exists now, so replace it without upsert; count only real changes.
    const retry = errors
      .map((e) => ops[e.index])
      .flatMap((op) =>
        op && 'insertOne' in op
          ? [op.insertOne.document as CustomerDoc]
          : op && 'replaceOne' in op
            ? [op.replaceOne.replacement as CustomerDoc]
            : [],
      );
    if (retry.length > 0) {
      const again = await coll.bulkWrite(
        retry.map((d) => ({
          replaceOne: {
            filter: { _id: d._id, $or: [{ contentHash: { $ne: d.contentHash } }, { deleted: true }] },
            replacement: d,
          },
        })),
        { ordered: false },
      );
      modified += again.modifiedCount;
    }
  }
  await writeHashes(colls.hashes, written, (id) => !stored.has(id));
  view.remember([...byId.values()]);
  return { upserted, modified, unchanged: byId.size - ops.length };
}
