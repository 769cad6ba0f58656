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
  /** Write-ahead marker: a refresh from this version may have reached Sage (set before every refresh call). */
  pendingRefresh: { fromVersion: number; attemptId: string; startedAt: Date } | null;
  updatedAt: Date;
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

/** Write-ahead: records that a refresh from `fromVersion` is about to call Sage. False when the store moved on. */
export async function markRefreshPending(mongo: Mongo, id: string, fromVersion: number, attemptId: string): Promise<boolean> {
  const now = new Date();
  const res = await tokensCollection(mongo).updateOne(
    { _id: id, version: fromVersion },
    { $set: { pendingRefresh: { fromVersion, attemptId, startedAt: now }, updatedAt: now } },
  );
  return res.matchedCount === 1;
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
