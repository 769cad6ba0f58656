/**
 * Content hashing: a stable hash of a record as Sage sent it, so an unchanged record is never rewritten and `modified`
 * counts real changes only. Object keys are sorted first, so key order in Sage's JSON does not matter.
 */
import { createHash } from 'node:crypto';

/** Bump when the mapping to the contract shape changes: every stored document then differs and is rewritten once. */
export const MAPPING_VERSION = 1;

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** Hash of the raw record (plus the mapping version); base64url of SHA-256, 43 characters. */
export function contentHash(raw: unknown): string {
  return createHash('sha256').update(`v${MAPPING_VERSION}:`).update(canonicalJson(raw)).digest('base64url');
}

/** Short hash used in quarantine ids (`{customerId}:{hash}`). */
export function payloadHash(raw: unknown): string {
  return createHash('sha256').update(canonicalJson(raw)).digest('hex').slice(0, 24);
}
