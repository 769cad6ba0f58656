/**
 * The change sequence of contract §4: every write that changes what a reader sees stamps the customer with `changeSeq`
 * (an integer that only grows within a connection, never reused) and `changedAt`.
 *
 * FerretDB has no multi-document transactions, and its updates are read-modify-write without a lock: measured on
 * FerretDB 1.24, 4 concurrent `findOneAndUpdate({$inc: {next: 1}})` × 10 rounds returned the same value twice in 9
 * rounds and left `next` at 18 instead of 40. The one atomic primitive both servers share is the unique `_id` of an
 * insert, so numbers are handed out in fixed blocks, one document per block:
 * - `change_seq_blocks`: `_id` = `{provider}:{tenantId}#{k}`; whoever inserts block k owns numbers
 *   ((k − 1)·B, k·B]. A writer tries k = hint + 1, hint + 2, … until its insert succeeds, so the blocks that exist are
 *   always exactly 1..K (no holes) and a number is never handed out twice.
 * - `change_seq`: `_id` = `{provider}:{tenantId}`, `k` = a hint of the highest block (raised after each insert; it may
 *   lag or even regress under concurrent writers, which only costs a few extra probes). The counter is K·B, found by
 *   probing upwards from the hint with point reads by `_id`.
 * - `change_reservations` holds one open reservation per partition being written (`_id` = the partition's
 *   `{provider}:{tenantId}:{partitionId}`), whose `floor` is ≤ every number the writer may still commit. It is written
 *   BEFORE the writer allocates, and removed only AFTER all its writes are committed.
 * - The horizon (what a reader may safely read up to) is read in the opposite order: the counter FIRST, then the
 *   reservations; horizon = min(counter, lowest floor − 1). A block counted in that counter value was allocated after its
 *   reservation was written, so the later read of the reservations sees it (or its removal, i.e. its commit). Hence no
 *   change with a sequence ≤ an announced horizon can be committed after the announcement.
 * A crashed attempt leaves its reservation behind, which holds the horizon back (never forward) until the partition's
 * next attempt replaces it: a SIGKILLed process commits nothing more, so its unused numbers become gaps. Gaps are
 * allowed; reuse is impossible because numbers only come from the counter's `$inc`.
 */
import { MongoServerError, type Db } from 'mongodb';
import { COLLECTIONS } from '../lib/mongo.js';
import {
  changeAnnouncedId,
  changeSeqBlockId,
  connectionKey,
  reservationId,
  type ConnectionKey,
  type PartitionKey,
} from '../connection/ids.js';

export const CHANGE_SEQ = COLLECTIONS.changeSeq;
export const CHANGE_SEQ_BLOCKS = COLLECTIONS.changeSeqBlocks;
export const CHANGE_RESERVATIONS = COLLECTIONS.changeReservations;
/** Numbers per block (fixed: the block number alone says which numbers it owns). A full sync pays one insert per this many changes. */
export const BLOCK_SIZE = 1000;

export type { ConnectionKey };

interface HintDoc {
  _id: string;
  /** Highest block known to exist (a hint, see above). */
  k: number;
}

interface BlockDoc {
  _id: string;
  at: Date;
}

interface AnnouncedDoc {
  _id: string;
  /** The highest `toSeq` announced (webhook / `sync_runs`), so the next run's `fromSeq` continues from it. */
  announced: number;
}

export interface ReservationDoc {
  _id: string;
  connection: string;
  floor: number;
  syncWorkflowId: string;
  attempt: number;
  openedAt: Date;
}

export { connectionKey, reservationId };

/** Pure: the highest sequence a reader can trust, given the counter (read first) and the open floors (read after). */
export function horizonOf(counter: number, floors: readonly number[]): number {
  let h = counter;
  for (const f of floors) h = Math.min(h, f - 1);
  return Math.max(0, h);
}

/** Pure: the range the next announcement covers, continuing from the last announced `toSeq`. */
export function nextAnnouncement(announced: number, horizon: number): { fromSeq: number; toSeq: number } {
  return { fromSeq: announced + 1, toSeq: Math.max(announced, horizon) };
}

const hints = (db: Db) => db.collection<HintDoc>(CHANGE_SEQ);
const announcedDocs = (db: Db) => db.collection<AnnouncedDoc>(CHANGE_SEQ);
const blocks = (db: Db) => db.collection<BlockDoc>(CHANGE_SEQ_BLOCKS);
const reservations = (db: Db) => db.collection<ReservationDoc>(CHANGE_RESERVATIONS);

/** The highest block that exists (0: none): from the hint, probing upwards by `_id` (blocks 1..K exist, no holes). */
async function highestBlock(db: Db, k: ConnectionKey): Promise<number> {
  let n = (await hints(db).findOne({ _id: connectionKey(k) }))?.k ?? 0;
  while (await blocks(db).findOne({ _id: changeSeqBlockId(k, n + 1) }, { projection: { _id: 1 } })) n++;
  return n;
}

/** The highest number handed out so far (0 before the first change). */
export async function readCounter(db: Db, k: ConnectionKey): Promise<number> {
  return (await highestBlock(db, k)) * BLOCK_SIZE;
}

export async function readAnnounced(db: Db, k: ConnectionKey): Promise<number> {
  return (await announcedDocs(db).findOne({ _id: changeAnnouncedId(k) }))?.announced ?? 0;
}

export async function readFloors(db: Db, k: ConnectionKey): Promise<number[]> {
  const docs = await reservations(db)
    .find({ connection: connectionKey(k) })
    .toArray();
  return docs.map((d) => d.floor);
}

/** The horizon now: counter first, reservations second (the order is what makes it safe; see the module comment). */
export async function readHorizon(db: Db, k: ConnectionKey): Promise<number> {
  const counter = await readCounter(db, k);
  return horizonOf(counter, await readFloors(db, k));
}

/** Takes the next free block by inserting it (unique `_id`: exactly one writer wins each block); returns its number. */
export async function allocateBlock(db: Db, k: ConnectionKey): Promise<number> {
  let n = (await highestBlock(db, k)) + 1;
  for (;;) {
    try {
      await blocks(db).insertOne({ _id: changeSeqBlockId(k, n), at: new Date() });
      break;
    } catch (err) {
      if (err instanceof MongoServerError && err.code === 11000) {
        n++; // another partition took it first
        continue;
      }
      throw err;
    }
  }
  // Only a hint (see the module comment): a lost or reordered update costs readers a probe, never correctness.
  await hints(db)
    .updateOne({ _id: connectionKey(k) }, { $max: { k: n } }, { upsert: true })
    .catch((err: unknown) => {
      if (!(err instanceof MongoServerError && err.code === 11000)) throw err;
    });
  return n;
}

/** Hands out sequence numbers to one partition's writes (one attempt of one run); see the module comment. */
export interface ChangeStamper {
  /** `n` fresh numbers, increasing (n ≥ 1). */
  take(n: number): Promise<number[]>;
  /** After every write of this attempt is committed: drop the partition's reservation (also a dead attempt's). */
  close(): Promise<void>;
}

export class ChangeSeqAllocator implements ChangeStamper {
  private nextSeq = 0;
  private blockEnd = -1;
  private opened = false;

  constructor(
    private readonly db: Db,
    private readonly key: PartitionKey,
    private readonly owner: { syncWorkflowId: string; attempt: number },
  ) {}

  /**
   * Writes (or replaces a dead attempt's) reservation with floor = counter + 1, read before the write: every block this
   * writer allocates afterwards starts above it. Only one attempt of a partition runs at a time (Temporal), so a
   * reservation found here belongs to a previous attempt that ended or died and commits nothing more.
   */
  async open(): Promise<void> {
    const counter = await readCounter(this.db, this.key);
    await reservations(this.db).replaceOne(
      { _id: reservationId(this.key) },
      {
        connection: connectionKey(this.key),
        floor: counter + 1,
        syncWorkflowId: this.owner.syncWorkflowId,
        attempt: this.owner.attempt,
        openedAt: new Date(),
      },
      { upsert: true },
    );
    this.opened = true;
  }

  async take(n: number): Promise<number[]> {
    if (n < 1) throw new Error('take(n) needs n ≥ 1');
    if (!this.opened) await this.open();
    const out: number[] = [];
    while (out.length < n) {
      if (this.nextSeq > this.blockEnd) {
        const block = await allocateBlock(this.db, this.key);
        this.nextSeq = (block - 1) * BLOCK_SIZE + 1;
        this.blockEnd = block * BLOCK_SIZE;
      }
      out.push(this.nextSeq++);
    }
    return out;
  }

  async close(): Promise<void> {
    await reservations(this.db).deleteOne({ _id: reservationId(this.key) });
    this.opened = false;
    this.blockEnd = -1;
  }
}

/** Drops the reservations a run left open (partitions that failed for good): their attempts commit nothing more. */
export async function closeRunReservations(
  db: Db,
  k: ConnectionKey,
  syncWorkflowId: string,
  partitionIds: string[],
): Promise<number> {
  if (partitionIds.length === 0) return 0;
  const ids = partitionIds.map((partitionId) => reservationId({ ...k, partitionId }));
  const res = await reservations(db).deleteMany({ _id: { $in: ids }, syncWorkflowId });
  return res.deletedCount;
}

/** Records `toSeq` as announced (only ever moves forward). */
export async function markAnnounced(db: Db, k: ConnectionKey, toSeq: number): Promise<void> {
  // One writer at a time (the run's announce step; runs of a connection do not overlap), so a plain $max is enough.
  await announcedDocs(db).updateOne({ _id: changeAnnouncedId(k) }, { $max: { announced: toSeq } }, { upsert: true });
}
