/**
 * zod building blocks shared by the provider mappings: Sage sends decimals as numbers or as decimal strings
 * (`"2000.0"`), ids as strings or integers, and free text of any length; these turn all of that into contract types or a
 * readable rejection reason.
 */
import { z } from 'zod';

/** Longest free-text field we store; a longer value is a bad record (quarantined), not something to truncate silently. */
export const MAX_TEXT = 2_000;

/** Optional free text: `null`/absent → null, an over-long string is rejected. */
export const text = (max = MAX_TEXT) =>
  z
    .string()
    .max(max, `longer than ${max} characters`)
    .nullish()
    .transform((v) => (v === undefined || v === null || v.trim() === '' ? null : v));

const DECIMAL = /^-?\d+(\.\d+)?$/;

/** A Sage decimal: a JSON number or a decimal string (`"1120.92"`); absent → null; anything else is rejected. */
export const decimal = z
  .union([z.number().finite(), z.string().trim().regex(DECIMAL, 'not a decimal number')])
  .nullish()
  .transform((v) => (v === undefined || v === null ? null : typeof v === 'number' ? v : Number(v)));

/** An ISO-8601 timestamp with a zone (Sage Accounting sends `Z` or `+01:00`), parsed to a Date. */
export const timestamp = z.iso
  .datetime({ offset: true, message: 'not an ISO-8601 timestamp with zone' })
  .transform((v) => new Date(v));

/** `2016-07-08T15:28:48.66`, with or without a fraction (any number of digits), with or without a zone. */
const SAGE200_DATETIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?)(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * Sage 200 date-time → Date, or null when it is not one. Sage 200 writes these without a zone (Sage's own customer
 * sample: `"date_time_updated": "2016-07-08T15:28:48.66"`) and its Swagger describes them as "(UTC)", so a zone-less
 * value is read as UTC; a value that does carry `Z` or an offset is honoured. Used by the mapping, the keyset cursor
 * and the watermark alike, so all three agree on the instant.
 */
export function parseSage200DateTime(value: unknown): Date | null {
  if (typeof value !== 'string') return null;
  const m = SAGE200_DATETIME.exec(value.trim());
  if (!m) return null;
  // JavaScript's Date takes at most millisecond precision: cut longer fractions (.NET writes up to 7 digits).
  const local = m[1]!.replace(/\.(\d{3})\d+$/, '.$1');
  const d = new Date(`${local}${m[2] ?? 'Z'}`);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** zod form of `parseSage200DateTime`. */
export const sage200Timestamp = z.string().transform((v, ctx) => {
  const d = parseSage200DateTime(v);
  if (!d) {
    ctx.addIssue({ code: 'custom', message: 'not a Sage 200 date-time (YYYY-MM-DDThh:mm:ss[.fff][zone])' });
    return z.NEVER;
  }
  return d;
});

/**
 * The documented form of Sage Accounting date parameters (`updated_or_created_since`, `deleted_since`):
 * `YYYY-MM-DDThh:mm:ss(+|-)hh:mm`. Whole seconds, rounded down: both bounds then read a little more, never less.
 */
export function sageAccountingDateParam(d: Date): string {
  return `${new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().slice(0, 19)}+00:00`;
}

/** An id Sage may send as a string or an integer; stored as a string (contract §7). */
export const externalId = z.union([
  z.string().trim().min(1, 'empty id').max(64, 'id longer than 64 characters'),
  z.number().int().nonnegative().transform(String),
]);

/**
 * Where a payload holds U+0000 (in a key or a string), or null. PostgreSQL's JSONB — under FerretDB — cannot store that
 * character at all, so such a record is quarantined (its payload kept as escaped JSON text) instead of failing the page.
 */
export function nulPath(value: unknown, path = '(record)'): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path : null;
  if (value === null || typeof value !== 'object') return null;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const here = path === '(record)' ? k : `${path}.${k}`;
    if (k.includes('\u0000')) return here;
    const found = nulPath(v, here);
    if (found) return found;
  }
  return null;
}

/** The rejection for a payload holding U+0000, or null when it has none. Both provider mappings check this first. */
export function rejectNul(raw: unknown): { ok: false; externalId: string | null; reason: string } | null {
  const at = nulPath(raw);
  return at
    ? {
        ok: false,
        externalId: looseId(raw),
        reason: `${at}: contains U+0000 (NUL), which the customer store cannot hold`,
      }
    : null;
}

/** Best-effort id extraction from an item that failed validation, so the quarantine entry still names the record. */
export function looseId(raw: unknown): string | null {
  if (raw && typeof raw === 'object' && 'id' in raw) {
    const id = (raw as { id: unknown }).id;
    if (typeof id === 'string' && id.length > 0 && id.length <= 64 && !id.includes('\u0000')) return id;
    if (typeof id === 'number' && Number.isSafeInteger(id)) return String(id);
  }
  return null;
}

/** One line naming every bad field, e.g. `credit_limit: not a decimal number; name: longer than 2000 characters`. */
export function zodReason(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(record)'}: ${i.message}`)
    .join('; ');
}
