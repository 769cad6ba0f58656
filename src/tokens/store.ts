/**
 * The token store: one versioned document per connection in the `tokens` collection, `_id` = the connection workflow id.
 * Access and refresh tokens are sealed together with AES-256-GCM (`TOKEN_ENCRYPTION_KEY`, key id stored beside them);
 * the `_id` and version are the AAD, so a sealed value cannot be moved to another connection or version. Every write
 * is a point operation on `_id` with a compare-and-set on `version` (`updateOne({_id, version})` + `matchedCount`), which
 * behaves the same on MongoDB and FerretDB. The workflow only ever sees versions and expiry times.
 */
import { Binary, MongoServerError, type Collection } from 'mongodb';
import { z } from 'zod';
import { open, seal, type KeyRing } from '../lib/crypto.js';
import { COLLECTIONS, type Mongo } from '../lib/mongo.js';
import type { Provider } from '../messages.js';
import type { TokenSet } from '../providers/oauth.js';

export interface TokenDoc {
  _id: string;
  tenantId: string;
  provider: Provider;
  version: number;
  keyId: string;
  sealed: Binary;
  accessTokenExpiresAt: Date;
  accessTokenLifetimeSec: number;
  refreshTokenExpiresAt: Date | null;
  refreshTokenLifetimeSec: number | null;
  obtainedAt: Date;
  /** Write-ahead lease: the refresh from `fromVersion` that may call Sage now (see `RefreshLease`). */
  pendingRefresh: RefreshLease | null;
  updatedAt: Date;
}

/**
 * A refresh lease, taken by compare-and-set before a refresh calls Sage. While it is live (not released, not expired)
 * no other attempt calls Sage for this version: it waits for the owner's stored answer or the lease's end. The owner
 * releases it when its call ended without an answer, saying whether that call may have reached Sage; a lease that
 * simply expires is treated as "may have reached Sage" (the owner died or stalled mid-call). `doubt` carries that
 * knowledge to later owners, so an `invalid_grant` after it is reported honestly as a possibly lost answer.
 * Documents written before leases existed have only `fromVersion`, `attemptId` and `startedAt`.
 */
export interface RefreshLease {
  fromVersion: number;
  attemptId: string;
  startedAt: Date;
  expiresAt?: Date;
  released?: boolean;
  /** An earlier call with this version's refresh token may have reached Sage and its answer was never stored. */
  doubt?: boolean;
}

/**
 * How long a lease protects a Sage call: far beyond the token call's own 20 s timeout, because the case it exists for
 * is a process that stalled mid-call (GC pause, frozen VM) and was timed out by Temporal: its retry must wait for it.
 * The price: a retry after a worker that died mid-call waits up to this long before calling Sage again.
 */
export const REFRESH_LEASE_MS = 90_000;

export type LeaseState = { kind: 'free'; doubt: boolean; attemptId: string | null } | { kind: 'live'; lease: RefreshLease; endsAt: Date };

/** What a lease on `fromVersion` in `doc` means at `now`: someone else's live call, or free (with what is known). */
export function leaseState(doc: Pick<TokenDoc, 'pendingRefresh'>, fromVersion: number, now: Date): LeaseState {
  const l = doc.pendingRefresh;
  if (!l) return { kind: 'free', doubt: false, attemptId: null };
  if (l.fromVersion !== fromVersion) return { kind: 'free', doubt: false, attemptId: l.attemptId };
  if (l.released) return { kind: 'free', doubt: l.doubt === true, attemptId: l.attemptId };
  const endsAt = l.expiresAt ?? new Date(l.startedAt.getTime() + REFRESH_LEASE_MS);
  if (endsAt.getTime() > now.getTime()) return { kind: 'live', lease: l, endsAt };
  // Expired without a word from its owner: its call may have reached Sage.
  return { kind: 'free', doubt: true, attemptId: l.attemptId };
}

/** Non-secret facts about the current tokens: this is all the workflow keeps. Dates as epoch ms. */
export interface TokenMeta {
  version: number;
  accessTokenExpiresAt: number;
  accessTokenLifetimeSec: number;
  refreshTokenExpiresAt: number | null;
  refreshTokenLifetimeSec: number | null;
  obtainedAt: number;
}

export interface PlainTokens {
  accessToken: string;
  refreshToken: string | null;
}

const SealedPayload = z.object({ a: z.string(), r: z.string().nullable() }).strict();

export class TokenStoreConflictError extends Error {
  override name = 'TokenStoreConflictError';
}

export function tokensCollection(mongo: Mongo): Collection<TokenDoc> {
  return mongo.collection<TokenDoc>(COLLECTIONS.tokens);
}

const aad = (id: string, version: number) => Buffer.from(`${id}#${version}`);

export function sealTokens(ring: KeyRing, id: string, version: number, t: PlainTokens): { keyId: string; sealed: Binary } {
  const { keyId, data } = seal(ring, Buffer.from(JSON.stringify({ a: t.accessToken, r: t.refreshToken })), aad(id, version));
  return { keyId, sealed: new Binary(data) };
}

export function openTokens(ring: KeyRing, doc: Pick<TokenDoc, '_id' | 'version' | 'keyId' | 'sealed'>): PlainTokens {
  const plain = open(ring, doc.keyId, Buffer.from(doc.sealed.buffer), aad(doc._id, doc.version));
  const p = SealedPayload.parse(JSON.parse(plain.toString('utf8')));
  return { accessToken: p.a, refreshToken: p.r };
}

export function metaOf(doc: TokenDoc): TokenMeta {
  return {
    version: doc.version,
    accessTokenExpiresAt: doc.accessTokenExpiresAt.getTime(),
    accessTokenLifetimeSec: doc.accessTokenLifetimeSec,
    refreshTokenExpiresAt: doc.refreshTokenExpiresAt?.getTime() ?? null,
    refreshTokenLifetimeSec: doc.refreshTokenLifetimeSec,
    obtainedAt: doc.obtainedAt.getTime(),
  };
}

export async function readTokenDoc(mongo: Mongo, id: string): Promise<TokenDoc | null> {
  return tokensCollection(mongo).findOne({ _id: id });
}

/** The refresh token in use before a refresh, kept when the answer carries none (with its own expiry). */
export interface PreviousRefresh {
  refreshToken: string | null;
  refreshTokenExpiresAt: Date | null;
  refreshTokenLifetimeSec: number | null;
}

function fieldsFor(ring: KeyRing, id: string, version: number, set: TokenSet, previous: PreviousRefresh | null, now: Date) {
  // Sage 200 (Sage ID) may answer a refresh without a new refresh token: the old one then stays valid, and so does
  // its expiry (it is not renewed by the refresh).
  const keepOld = set.refreshToken === null && previous !== null && previous.refreshToken !== null;
  const refreshToken = keepOld ? previous.refreshToken : set.refreshToken;
  const refreshTokenExpiresAt = keepOld ? previous.refreshTokenExpiresAt : refreshToken ? new Date(now.getTime() + set.refreshTokenExpiresIn * 1000) : null;
  return {
    version,
    ...sealTokens(ring, id, version, { accessToken: set.accessToken, refreshToken }),
    accessTokenExpiresAt: new Date(now.getTime() + set.expiresIn * 1000),
    accessTokenLifetimeSec: set.expiresIn,
    refreshTokenExpiresAt,
    refreshTokenLifetimeSec: keepOld ? previous.refreshTokenLifetimeSec : refreshToken ? set.refreshTokenExpiresIn : null,
    obtainedAt: now,
    pendingRefresh: null,
    updatedAt: now,
  };
}

// Consent writes (code exchange, staged re-consent) live in `consent-store.ts`.

/**
 * Takes the refresh lease on `fromVersion` if it is free as seen in `seen` (compare-and-set on the version and the
 * previous lease's owner). Returns the lease, or null when someone else changed the document first (read again).
 */
export async function acquireRefreshLease(
  mongo: Mongo,
  p: { id: string; fromVersion: number; attemptId: string; seen: Pick<TokenDoc, 'pendingRefresh'>; now?: Date; leaseMs?: number },
): Promise<RefreshLease | null> {
  const now = p.now ?? new Date();
  const state = leaseState(p.seen, p.fromVersion, now);
  if (state.kind === 'live') return null;
  const lease: RefreshLease = {
    fromVersion: p.fromVersion,
    attemptId: p.attemptId,
    startedAt: now,
    expiresAt: new Date(now.getTime() + (p.leaseMs ?? REFRESH_LEASE_MS)),
    released: false,
    doubt: state.doubt,
  };
  const previousOwner = state.attemptId === null ? { pendingRefresh: null } : { 'pendingRefresh.attemptId': state.attemptId };
  const res = await tokensCollection(mongo).updateOne({ _id: p.id, version: p.fromVersion, ...previousOwner } as never, { $set: { pendingRefresh: lease, updatedAt: now } });
  return res.matchedCount === 1 ? lease : null;
}

/**
 * Ends our lease after a Sage call that brought no answer, so the next attempt need not wait for it to expire.
 * `mayHaveReachedSage`: the call could have rotated the token (timeout, reset, 5xx), kept as `doubt` for later owners.
 */
export async function releaseRefreshLease(mongo: Mongo, p: { id: string; lease: RefreshLease; mayHaveReachedSage: boolean }): Promise<void> {
  const now = new Date();
  await tokensCollection(mongo).updateOne(
    { _id: p.id, version: p.lease.fromVersion, 'pendingRefresh.attemptId': p.lease.attemptId } as never,
    { $set: { 'pendingRefresh.released': true, 'pendingRefresh.expiresAt': now, 'pendingRefresh.doubt': p.lease.doubt === true || p.mayHaveReachedSage, updatedAt: now } },
  );
}

/**
 * Stores a refresh answer as `fromVersion + 1`, only if the store is still at `fromVersion`. Returns the stored document,
 * or the newer document already there (a lost race: nothing written).
 */
export async function commitRefresh(
  mongo: Mongo,
  ring: KeyRing,
  p: { id: string; fromVersion: number; tokens: TokenSet; previous: PreviousRefresh; now?: Date },
): Promise<{ stored: boolean; doc: TokenDoc }> {
  const coll = tokensCollection(mongo);
  const fields = fieldsFor(ring, p.id, p.fromVersion + 1, p.tokens, p.previous, p.now ?? new Date());
  const res = await coll.updateOne({ _id: p.id, version: p.fromVersion }, { $set: fields });
  const doc = await coll.findOne({ _id: p.id });
  if (!doc) throw new TokenStoreConflictError(`token document ${p.id} disappeared while storing a refresh`);
  if (res.matchedCount === 1) return { stored: true, doc };
  if (doc.version > p.fromVersion) return { stored: false, doc };
  throw new TokenStoreConflictError(`token document ${p.id} is at version ${doc.version}, expected ${p.fromVersion}`);
}

export async function deleteTokenDoc(mongo: Mongo, id: string): Promise<void> {
  await tokensCollection(mongo).deleteOne({ _id: id });
}

/**
 * A Sage answer that is not stored yet, sealed for the activity's heartbeat details, so a retry on another worker can
 * store it instead of calling Sage again (MongoDB down, worker killed). Encrypted with the token key; the AAD binds it
 * to the connection and the source version, so it cannot be replayed into another connection or version. Temporal's
 * payload codec encrypts the details again on top.
 */
export interface CarriedAnswer {
  carried: 'refresh-answer/1';
  fromVersion: number;
  keyId: string;
  sealed: string;
}

const CarriedPlain = z
  .object({
    tokens: z.object({
      accessToken: z.string(),
      refreshToken: z.string().nullable(),
      expiresIn: z.number(),
      refreshTokenExpiresIn: z.number(),
      scope: z.string().optional(),
    }),
    previous: z.object({ refreshToken: z.string().nullable(), refreshTokenExpiresAt: z.coerce.date().nullable(), refreshTokenLifetimeSec: z.number().nullable() }),
  })
  .strict();

const carriedAad = (id: string, fromVersion: number) => Buffer.from(`${id}#${fromVersion}#carried-refresh-answer`);

export function sealCarriedAnswer(ring: KeyRing, id: string, fromVersion: number, answer: { tokens: TokenSet; previous: PreviousRefresh }): CarriedAnswer {
  const { keyId, data } = seal(ring, Buffer.from(JSON.stringify(answer)), carriedAad(id, fromVersion));
  return { carried: 'refresh-answer/1', fromVersion, keyId, sealed: data.toString('base64') };
}

/** The answer carried in heartbeat details for this connection and version, or null (none, other version, not ours). */
export function openCarriedAnswer(ring: KeyRing, id: string, fromVersion: number, details: unknown): { tokens: TokenSet; previous: PreviousRefresh } | null {
  const d = details as Partial<CarriedAnswer> | null | undefined;
  if (!d || d.carried !== 'refresh-answer/1' || d.fromVersion !== fromVersion || typeof d.keyId !== 'string' || typeof d.sealed !== 'string') return null;
  const plain = open(ring, d.keyId, Buffer.from(d.sealed, 'base64'), carriedAad(id, fromVersion));
  const p = CarriedPlain.parse(JSON.parse(plain.toString('utf8')));
  const tokens: TokenSet = { ...p.tokens, ...(p.tokens.scope === undefined ? {} : { scope: p.tokens.scope }) };
  return { tokens, previous: p.previous };
}
