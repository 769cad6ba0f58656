/**
 * The downstream reader of the change sequence, as the README tells readers to read (contract §4 `changeSeq`): the
 * customers whose `changeSeq` is in (cursor, horizon], then the cursor moves to the horizon. `readChanges` is one such
 * read; `startChangeReader` keeps polling in the background (its cursor survives whatever the test does meanwhile, a
 * worker SIGKILL included) and records every change it read with its number and every horizon it saw.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { COLLECTIONS, type Mongo } from '../../src/lib/mongo.js';
import { readHorizon, type ConnectionKey } from '../../src/sync/change-seq.js';
import type { CustomerDoc } from '../../src/sync/documents.js';

/** What a downstream reader gets for (after, upTo], in sequence order: the query of the README. */
export function readChanges(mongo: Mongo, conn: ConnectionKey, after: number, upTo: number): Promise<CustomerDoc[]> {
  return mongo
    .collection<CustomerDoc>(COLLECTIONS.customers)
    .find({ tenantId: conn.tenantId, provider: conn.provider, changeSeq: { $gt: after, $lte: upTo } })
    .sort({ changeSeq: 1 })
    .toArray();
}

export interface ChangeReader {
  /** The horizon when the reader started (its first cursor). */
  readonly cursorAtStart: number;
  /** Where it is now (the last horizon it read up to). */
  readonly cursor: number;
  /** Customer `_id` → the `changeSeq` it was last read with. */
  readonly seen: Map<string, number>;
  /** Every horizon read, in order. */
  readonly horizons: number[];
  /** Ends the background loop, then reads once more (so everything committed by now is read). */
  stop(): Promise<void>;
}

export async function startChangeReader(
  mongo: Mongo,
  conn: ConnectionKey,
  opts: { intervalMs?: number } = {},
): Promise<ChangeReader> {
  const cursorAtStart = await readHorizon(mongo.db, conn);
  let cursor = cursorAtStart;
  const seen = new Map<string, number>();
  const horizons: number[] = [];
  let reading = true;
  const poll = async () => {
    const horizon = await readHorizon(mongo.db, conn);
    for (const d of await readChanges(mongo, conn, cursor, horizon)) seen.set(d._id, d.changeSeq!);
    horizons.push(horizon);
    cursor = Math.max(cursor, horizon);
  };
  const loop = (async () => {
    while (reading) {
      await poll();
      await sleep(opts.intervalMs ?? 100);
    }
  })();
  return {
    cursorAtStart,
    get cursor() {
      return cursor;
    },
    seen,
    horizons,
    async stop() {
      reading = false;
      await loop;
      await poll();
    },
  };
}
