/**
 * The change sequence of contract §4: every write that changes what a reader sees stamps the customer with `changeSeq`
 * (an integer that only grows within a connection, never reused) and `changedAt`.
 *
 * FerretDB has no multi-document transactions, so the sequence is built from single-document atomic operations:
 * - `change_seq` holds one counter per connection (`_id` = `{provider}:{tenantId}`, `next` = last allocated number).
 *   Writers take blocks with `findOneAndUpdate({$inc})` (atomic on one document, on MongoDB and on FerretDB 1.24).
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
import { MongoServerError, type Collection, type Db } from 'mongodb';
import type { Provider } from '../messages.js';
import type { PartitionKey } from './documents.js';

export const CHANGE_SEQ = 'change_seq';
export const CHANGE_RESERVATIONS = 'change_reservations';
/** Numbers taken per counter round trip: a full sync pays one `$inc` per this many changed customers. */
export const DEFAULT_BLOCK_SIZE = 1000;

export interface ConnectionKey {
  tenantId: string;
  provider: Provider;
}

export interface CounterDoc {
  _id: string;
  /** The highest number ever handed out (0 before the first change). */
  next: number;
  /** The highest `toSeq` announced (webhook / `sync_runs`), so the next run's `fromSeq` continues from it. */
  announced?: number;
}

export interface ReservationDoc {
  _id: string;
  connection: string;
  floor: number;
  syncWorkflowId: string;
  attempt: number;
  openedAt: Date;
}

export const connectionKey = (k: ConnectionKey) => `${k.provider}:${k.tenantId}`;
export const reservationId = (k: PartitionKey) => `${k.provider}:${k.tenantId}:${k.partitionId}`;

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

const counters = (db: Db) => db.collection<CounterDoc>(CHANGE_SEQ);
const reservations = (db: Db) => db.collection<ReservationDoc>(CHANGE_RESERVATIONS);

export async function readCounter(db: Db, k: ConnectionKey): Promise<CounterDoc | null> {
  return counters(db).findOne({ _id: connectionKey(k) });
}

export async function readFloors(db: Db, k: ConnectionKey): Promise<number[]> {
  const docs = await reservations(db).find({ connection: connectionKey(k) }).toArray();
  return docs.map((d) => d.floor);
}

/** The horizon now: counter first, reservations second (the order is what makes it safe; see the module comment). */
export async function readHorizon(db: Db, k: ConnectionKey): Promise<number> {
  const counter = (await readCounter(db, k))?.next ?? 0;
  return horizonOf(counter, await readFloors(db, k));
}

/** Atomically takes `size` numbers from the connection's counter; returns the first. Retries the upsert race once. */
export async function allocateBlock(db: Db, k: ConnectionKey, size: number): Promise<number> {
  const coll: Collection<CounterDoc> = counters(db);
  for (let attempt = 0; ; attempt++) {
    try {
      const doc = await coll.findOneAndUpdate({ _id: connectionKey(k) }, { $inc: { next: size } }, { upsert: true, returnDocument: 'after' });
      if (!doc) throw new Error(`change counter ${connectionKey(k)} not returned`);
      return doc.next - size + 1;
    } catch (err) {
      // Two first-ever allocations racing on the upsert: one inserts, the other gets 11000 and simply tries again.
      if (attempt === 0 && err instanceof MongoServerError && err.code === 11000) continue;
      throw err;
    }
  }
}

/** Hands out sequence numbers to one partition's writes (one attempt of one run); see the module comment. */
export interface ChangeStamper {
  /** First of `n` consecutive fresh numbers (n ≥ 1). */
  take(n: number): Promise<number>;
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
    private readonly blockSize = DEFAULT_BLOCK_SIZE,
  ) {}

  /**
   * Writes (or replaces a dead attempt's) reservation with floor = counter + 1, read before the write: every block this
   * writer allocates afterwards starts above it. Only one attempt of a partition runs at a time (Temporal), so a
   * reservation found here belongs to a previous attempt that ended or died and commits nothing more.
   */
  async open(): Promise<void> {
    const counter = (await readCounter(this.db, this.key))?.next ?? 0;
    await reservations(this.db).replaceOne(
      { _id: reservationId(this.key) },
      { connection: connectionKey(this.key), floor: counter + 1, syncWorkflowId: this.owner.syncWorkflowId, attempt: this.owner.attempt, openedAt: new Date() },
      { upsert: true },
    );
    this.opened = true;
  }

  async take(n: number): Promise<number> {
    if (n < 1) throw new Error('take(n) needs n ≥ 1');
    if (!this.opened) await this.open();
    if (this.blockEnd - this.nextSeq + 1 < n) {
      // The rest of the old block is left unused (a gap): numbers are never handed out twice.
      const size = Math.max(n, this.blockSize);
      this.nextSeq = await allocateBlock(this.db, this.key, size);
      this.blockEnd = this.nextSeq + size - 1;
    }
    const first = this.nextSeq;
    this.nextSeq += n;
    return first;
  }

  async close(): Promise<void> {
    await reservations(this.db).deleteOne({ _id: reservationId(this.key) });
    this.opened = false;
    this.blockEnd = -1;
  }
}

/** Drops the reservations a run left open (partitions that failed for good): their attempts commit nothing more. */
export async function closeRunReservations(db: Db, k: ConnectionKey, syncWorkflowId: string, partitionIds: string[]): Promise<number> {
  if (partitionIds.length === 0) return 0;
  const ids = partitionIds.map((partitionId) => reservationId({ ...k, partitionId }));
  const res = await reservations(db).deleteMany({ _id: { $in: ids }, syncWorkflowId });
  return res.deletedCount;
}

/** Records `toSeq` as announced (only ever moves forward). */
export async function markAnnounced(db: Db, k: ConnectionKey, toSeq: number): Promise<void> {
  await counters(db).updateOne({ _id: connectionKey(k) }, { $max: { announced: toSeq }, $setOnInsert: { next: 0 } }, { upsert: true });
}
