/**
 * What a finished `syncCustomers` run announces to downstream readers (contract §5 `customers.changed`): the range of
 * `changeSeq` its changes fall in and, per partition, how many customers were created, updated and deleted.
 *
 * The range continues from the last announced `toSeq` (`fromSeq` = that + 1), so consecutive events tile the sequence
 * without holes: a change that no event counted (e.g. written by a page that was in flight when a worker died) is still
 * inside the next event's range. `toSeq` is the horizon (src/sync/change-seq.ts), computed after every partition of the
 * run finished, so nothing ≤ `toSeq` is committed after the event is sent.
 */
import type { Db } from 'mongodb';
import { COLLECTIONS } from '../lib/mongo.js';
import {
  closeRunReservations,
  horizonOf,
  markAnnounced,
  nextAnnouncement,
  readAnnounced,
  readCounter,
  readFloors,
  type ConnectionKey,
} from './change-seq.js';
import { syncRunId } from './documents.js';

export const CHANGE_ANNOUNCEMENTS = COLLECTIONS.changeAnnouncements;

export interface PartitionChangeCounts {
  created: number;
  updated: number;
  deleted: number;
}

/** Contract §5 event body (signed and delivered by `deliverNotification`). */
export interface CustomersChangedEvent {
  id: string;
  type: 'customers.changed';
  tenantId: string;
  provider: ConnectionKey['provider'];
  /** The `syncCustomers` workflow id. */
  runId: string;
  partitions: Record<string, PartitionChangeCounts>;
  fromSeq: number;
  toSeq: number;
}

export interface Announcement {
  /** False when the run changed nothing: no event, and `announced` does not move. */
  changed: boolean;
  fromSeq: number;
  toSeq: number;
}

interface AnnouncementDoc extends ConnectionKey {
  _id: string;
  fromSeq: number;
  toSeq: number;
  partitions: Record<string, PartitionChangeCounts>;
  at: Date;
}

export const totalChanges = (partitions: Record<string, PartitionChangeCounts>) =>
  Object.values(partitions).reduce((n, c) => n + c.created + c.updated + c.deleted, 0);

/**
 * Idempotent per run (`_id` = the syncCustomers workflow id): a retried activity returns the range it decided first.
 * Also closes reservations the run's failed partitions left open, and records the horizon on the run's `sync_runs`
 * documents (`changeHorizon`, plus `fromSeq`/`toSeq` when announced) for readers without a webhook.
 */
export async function announceRun(
  db: Db,
  k: ConnectionKey,
  syncWorkflowId: string,
  partitions: Record<string, PartitionChangeCounts>,
  now = new Date(),
): Promise<Announcement> {
  const partitionIds = Object.keys(partitions);
  await closeRunReservations(db, k, syncWorkflowId, partitionIds);
  const coll = db.collection<AnnouncementDoc>(CHANGE_ANNOUNCEMENTS);
  const existing = await coll.findOne({ _id: syncWorkflowId });
  // Counter first, reservations second (src/sync/change-seq.ts).
  const counter = await readCounter(db, k);
  const horizon = horizonOf(counter, await readFloors(db, k));
  let result: Announcement;
  if (existing) {
    result = { changed: true, fromSeq: existing.fromSeq, toSeq: existing.toSeq };
  } else {
    const range = nextAnnouncement(await readAnnounced(db, k), horizon);
    const changed = totalChanges(partitions) > 0 && range.toSeq >= range.fromSeq;
    result = { changed, ...range };
    if (changed) await coll.insertOne({ _id: syncWorkflowId, ...k, ...range, partitions, at: now });
  }
  // Repeated on a retry too: the insert above may have been the last thing a crashed attempt did.
  if (result.changed) await markAnnounced(db, k, result.toSeq);
  const runs = db.collection(COLLECTIONS.syncRuns);
  const fields = result.changed
    ? { changeHorizon: horizon, fromSeq: result.fromSeq, toSeq: result.toSeq }
    : { changeHorizon: horizon };
  if (partitionIds.length > 0)
    await runs.bulkWrite(
      partitionIds.map((p) => ({
        updateOne: { filter: { _id: syncRunId(syncWorkflowId, p) } as never, update: { $set: fields } },
      })),
      { ordered: false },
    );
  return result;
}
