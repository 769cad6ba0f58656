/**
 * The ids a full run has seen, stored per page (`_id` = `{syncRunId}:{page}`) next to the page checkpoint, so a run
 * resumed on another worker still knows what it saw before the crash. Deleted when the run ends.
 * Also the write-ahead intents of page writes (below): which stored customers full reconciliation must consider.
 */
import { randomUUID } from 'node:crypto';
import type { Collection } from 'mongodb';
import { seenPageId } from '../connection/ids.js';
import { COLLECTIONS } from '../lib/mongo.js';

export interface SeenPageDoc {
  _id: string;
  ids: string[];
  at: Date;
}

export async function recordSeen(
  coll: Collection<SeenPageDoc>,
  runKey: string,
  page: number,
  ids: string[],
  now: Date,
): Promise<void> {
  await coll.updateOne({ _id: seenPageId(runKey, page) }, { $set: { ids, at: now } }, { upsert: true });
}

export async function loadSeen(coll: Collection<SeenPageDoc>, runKey: string, pages: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let start = 1; start <= pages; start += 500) {
    const ids = Array.from({ length: Math.min(500, pages - start + 1) }, (_, i) => seenPageId(runKey, start + i));
    for (const doc of await coll.find({ _id: { $in: ids } }).toArray()) for (const id of doc.ids) seen.add(id);
  }
  return seen;
}

export async function clearSeen(coll: Collection<SeenPageDoc>, runKey: string, pages: number): Promise<void> {
  for (let start = 1; start <= pages + 1; start += 500) {
    const ids = Array.from({ length: Math.min(500, pages + 1 - start + 1) }, (_, i) => seenPageId(runKey, start + i));
    await coll.deleteMany({ _id: { $in: ids } });
  }
}

/**
 * Write-ahead intents (`sync_write_intents`, one small document per page write, `p` = the partition's `_id` prefix):
 * the customer `_id`s of a page that have no live `customer_hashes` entry yet are recorded BEFORE the page's customers
 * are written, and the record is removed once their hash entries are written too. Full reconciliation takes its
 * deletion candidates from `customer_hashes`, so without this a crash between the two writes leaves a stored, live
 * customer that no full run ever considers; if Sage deletes it before the retry re-reads its page, it stays live for
 * good (the full run then moves the deletion feed past the deletion). A left-over intent makes its ids candidates of
 * the next full reconciliation, which drops the intents it has dealt with.
 */
export const SYNC_WRITE_INTENTS = COLLECTIONS.syncWriteIntents;

export interface WriteIntentDoc {
  _id: string;
  p: string;
  ids: string[];
  at: Date;
}

export async function recordWriteIntent(
  coll: Collection<WriteIntentDoc>,
  partitionPrefix: string,
  ids: string[],
  now: Date,
): Promise<string | null> {
  if (ids.length === 0) return null;
  const _id = `${partitionPrefix}${randomUUID()}`;
  await coll.insertOne({ _id, p: partitionPrefix, ids, at: now });
  return _id;
}

export async function clearWriteIntent(coll: Collection<WriteIntentDoc>, id: string | null): Promise<void> {
  if (id) await coll.deleteOne({ _id: id });
}

/** Intents left behind by crashed writes in this partition: their document ids and the customer `_id`s they name. */
export async function loadWriteIntents(
  coll: Collection<WriteIntentDoc>,
  partitionPrefix: string,
): Promise<{ docIds: string[]; ids: string[] }> {
  const docs = await coll.find({ p: partitionPrefix }).toArray();
  return { docIds: docs.map((d) => d._id), ids: [...new Set(docs.flatMap((d) => d.ids))] };
}

export async function dropWriteIntents(coll: Collection<WriteIntentDoc>, docIds: string[]): Promise<void> {
  for (let i = 0; i < docIds.length; i += 500) await coll.deleteMany({ _id: { $in: docIds.slice(i, i + 500) } });
}
