/**
 * The incremental-sync watermark: the highest `(updatedAt, id)` key a successful run has seen. The next run asks Sage
 * for everything updated at or after `updatedAt - overlap`, because `updated_or_created_since` is inclusive, many
 * records share one second (ties can straddle a page boundary), and the clocks of Sage and of a record's commit may
 * lag. Records re-read inside the overlap are skipped by their content hash, so the overlap costs reads, not writes.
 */
import type { Watermark } from '../providers/types.js';

export type { Watermark } from '../providers/types.js';

/** Orders `(updatedAt, id)` keys; ISO strings in one format compare correctly as strings after Date normalisation. */
export function compareKeys(a: Watermark, b: Watermark): number {
  const ta = Date.parse(a.updatedAt);
  const tb = Date.parse(b.updatedAt);
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function maxWatermark(a: Watermark | null | undefined, b: Watermark | null | undefined): Watermark | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return compareKeys(a, b) >= 0 ? a : b;
}

export function watermarkOf(customer: { sourceUpdatedAt: Date; externalId: string }): Watermark {
  return { updatedAt: customer.sourceUpdatedAt.toISOString(), id: customer.externalId };
}

/** The inclusive lower bound for the next incremental listing; null means "no watermark yet" (a full run is due). */
export function incrementalSince(watermark: Watermark | null | undefined, overlapSeconds: number): Date | null {
  if (!watermark) return null;
  return new Date(Date.parse(watermark.updatedAt) - overlapSeconds * 1000);
}

/** Advances a watermark over a page of mapped customers. */
export function advanceWatermark(
  current: Watermark | null,
  customers: { sourceUpdatedAt: Date; externalId: string }[],
): Watermark | null {
  let wm = current;
  for (const c of customers) wm = maxWatermark(wm, watermarkOf(c));
  return wm;
}
