/**
 * The ids a full run has seen, stored per page (`_id` = `{syncRunId}:{page}`) next to the page checkpoint, so a run
 * resumed on another worker still knows what it saw before the crash. Deleted when the run ends.
 */
import type { Collection } from 'mongodb';

export interface SeenPageDoc {
  _id: string;
  ids: string[];
  at: Date;
}

const pageId = (runKey: string, page: number) => `${runKey}:${page}`;

export async function recordSeen(coll: Collection<SeenPageDoc>, runKey: string, page: number, ids: string[], now: Date): Promise<void> {
  await coll.updateOne({ _id: pageId(runKey, page) }, { $set: { ids, at: now } }, { upsert: true });
}

export async function loadSeen(coll: Collection<SeenPageDoc>, runKey: string, pages: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let start = 1; start <= pages; start += 500) {
    const ids = Array.from({ length: Math.min(500, pages - start + 1) }, (_, i) => pageId(runKey, start + i));
    for (const doc of await coll.find({ _id: { $in: ids } }).toArray()) for (const id of doc.ids) seen.add(id);
  }
  return seen;
}

export async function clearSeen(coll: Collection<SeenPageDoc>, runKey: string, pages: number): Promise<void> {
  for (let start = 1; start <= pages + 1; start += 500) {
    const ids = Array.from({ length: Math.min(500, pages + 1 - start + 1) }, (_, i) => pageId(runKey, start + i));
    await coll.deleteMany({ _id: { $in: ids } });
  }
}
