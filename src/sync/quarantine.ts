/**
 * Records that failed validation go to `quarantine` with their reason (never silently dropped). The `_id` is the
 * customer's `_id` plus a hash of the rejected payload, so re-reading the same bad record is a no-op and a different
 * bad version of it gets its own entry.
 */
import type { Collection } from 'mongodb';
import { nulPath } from '../providers/schema-helpers.js';
import { quarantineId, storableRaw, type PartitionKey } from './documents.js';

/** Payloads larger than this are kept as a truncated JSON string (a "huge string" record must not break the write). */
export const MAX_QUARANTINED_RAW_CHARS = 64 * 1024;

export interface QuarantineDoc extends PartitionKey {
  _id: string;
  externalId: string | null;
  reason: string;
  raw?: unknown;
  rawJson?: string;
  rawTruncated?: boolean;
  runId: string;
  firstSeenAt: Date;
  lastSeenAt: Date;
}

export interface Rejected {
  externalId: string | null;
  reason: string;
  raw: unknown;
}

export async function writeQuarantine(
  coll: Collection<QuarantineDoc>,
  k: PartitionKey,
  runId: string,
  rejected: Rejected[],
  now: Date,
): Promise<number> {
  if (rejected.length === 0) return 0;
  const ops = rejected.map((r) => {
    const json = JSON.stringify(r.raw) ?? 'null';
    // Too large, or holding U+0000 (which FerretDB's PostgreSQL cannot store): keep it as JSON text, where NUL is escaped.
    const payload =
      json.length > MAX_QUARANTINED_RAW_CHARS || nulPath(r.raw)
        ? { rawJson: json.slice(0, MAX_QUARANTINED_RAW_CHARS), rawTruncated: json.length > MAX_QUARANTINED_RAW_CHARS }
        : { raw: storableRaw(r.raw), rawTruncated: false };
    return {
      updateOne: {
        filter: { _id: quarantineId(k, r.externalId, r.raw) },
        update: {
          $set: { ...k, externalId: r.externalId, reason: r.reason.slice(0, 2000), ...payload, runId, lastSeenAt: now },
          $setOnInsert: { firstSeenAt: now },
        },
        upsert: true,
      },
    };
  });
  await coll.bulkWrite(ops, { ordered: false });
  return rejected.length;
}
