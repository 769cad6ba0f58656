/**
 * The token store: one versioned document per connection in the `tokens` collection, `_id` = the connection workflow id.
 * Access and refresh tokens are sealed together with AES-256-GCM (`TOKEN_ENCRYPTION_KEY`, key id stored beside them);
 * the `_id` and version are the AAD, so a sealed value cannot be moved to another connection or version. The workflow
 * only ever sees versions and expiry times.
 *
 * **Every compare-and-set rests on a unique `_id` insert** (`token_claims`), never on a filtered update. A filtered
 * `updateOne`/`findOneAndUpdate` is not a compare-and-set on FerretDB 1.24: it SELECTs the matching documents without a
 * lock, applies the update in memory and writes the whole document back by `_id`, so two concurrent updates with the same
 * filter both "match" and both succeed (measured: test/integration/token-cas.test.ts; the README's token store section
 * has the figures). An insert of an existing `_id` fails with 11000 on MongoDB and on FerretDB (PostgreSQL primary key),
 * so exactly one insert of a claim wins:
 *
 * - version `V` of a connection exists once its claim `{id}#{gen}#v{V}` (holding all of V's fields) is inserted: that
 *   insert is the compare-and-set "store is at V-1 → V" (refresh commits, consents, re-consent promotions);
 * - the refresh lease of version `N` is a chain of claims `{id}#{gen}#v{N}#lease{n}`: the first taker inserts `n = 1`;
 *   whoever takes over an expired or released lease `n` inserts `n + 1`, so a takeover has one winner too. Only a lease's
 *   owner updates its claim (release), so no two writers race on it.
 *
 * The `tokens` document is the head: a copy of the newest version (and a hint of the current lease for the read path),
 * written after the claim. Readers roll it forward (`readTokenDoc` probes `v{version+1}`), so a writer that died between
 * its claim and the head write, or a head write lost to a concurrent one on FerretDB, costs nothing. `gen` (`claimGen`)
 * is drawn when the document is first inserted, so a connection deleted and consented again never meets old claims.
 */
import type { TokenInfo } from '../connection/machine.js';
import { Binary, MongoServerError, type Collection } from 'mongodb';
import { z } from 'zod';
import { leaseClaimId, versionClaimId } from '../connection/ids.js';
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
  /** Names this document's claims (`token_claims`); absent on documents written before claims existed ('g0'). */
  claimGen?: string;
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
  /** Position in this version's lease chain (1 = first taker) and the `_id` of its claim; absent on older markers. */
  n?: number;
  claimId?: string;
}

/**
 * How long a lease protects a Sage call: far beyond the token call's own 20 s timeout, because the case it exists for
 * is a process that stalled mid-call (GC pause, frozen VM) and was timed out by Temporal: its retry must wait for it.
 * The price: a retry after a worker that died mid-call waits up to this long before calling Sage again.
 */
export const REFRESH_LEASE_MS = 90_000;

export type LeaseState =
  { kind: 'free'; doubt: boolean; attemptId: string | null } | { kind: 'live'; lease: RefreshLease; endsAt: Date };

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
export type TokenMeta = TokenInfo;

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

/** The fields that make up one version (everything but the connection's identity). */
export type VersionFields = Omit<TokenDoc, '_id' | 'tenantId' | 'provider' | 'claimGen'> & {
  consentExchangeId?: string | null;
  consentCandidate?: null;
};

export type TokenClaim =
  | { _id: string; kind: 'version'; fields: VersionFields; at: Date }
  | { _id: string; kind: 'lease'; lease: RefreshLease; at: Date }
  | { _id: string; kind: 'candidate'; candidate: unknown; at: Date };

export function claimsCollection(mongo: Mongo): Collection<TokenClaim> {
  return mongo.collection<TokenClaim>(COLLECTIONS.tokenClaims);
}

export const genOf = (doc: { claimGen?: string | undefined }): string => doc.claimGen ?? 'g0';
export { leaseClaimId, versionClaimId };
export const isDuplicateKey = (err: unknown) => err instanceof MongoServerError && err.code === 11000;

/**
 * Inserts the claim of version `fields.version` (the compare-and-set). True: ours, write the head. False: that version
 * exists already (someone else stored it first).
 */
export async function claimVersion(
  mongo: Mongo,
  id: string,
  gen: string,
  fields: VersionFields,
  now: Date,
): Promise<boolean> {
  try {
    await claimsCollection(mongo).insertOne({
      _id: versionClaimId(id, gen, fields.version),
      kind: 'version',
      fields,
      at: now,
    });
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

/**
 * Copies a claimed version into the head document, unless the head is already there or beyond. On MongoDB the filter
 * makes this exact; on FerretDB a racing head write can still win, which readers' roll-forward makes harmless.
 */
export async function writeHead(mongo: Mongo, id: string, fields: VersionFields): Promise<void> {
  await tokensCollection(mongo).updateOne({ _id: id, version: { $lt: fields.version } } as never, {
    $set: fields as never,
  });
}

/** Best effort: claims no reader needs any more (versions two behind the head, leases on versions before it). */
export async function collectOldClaims(mongo: Mongo, id: string, gen: string, version: number): Promise<void> {
  const claims = claimsCollection(mongo);
  try {
    if (version > 2) await claims.deleteOne({ _id: versionClaimId(id, gen, version - 2) });
    for (const v of [version - 1, version - 2].filter((x) => x >= 1)) {
      for (let n = 1; n <= 20; n++) {
        const res = await claims.deleteOne({ _id: leaseClaimId(id, gen, v, n) });
        if (res.deletedCount === 0) break;
      }
    }
  } catch {
    /* garbage only: the next version collects it */
  }
}

/** Follows version claims past the head (a writer that died after its claim, a head write lost to a racing one). */
async function rollForward(mongo: Mongo, head: TokenDoc): Promise<TokenDoc> {
  let doc = head;
  for (;;) {
    const next = await claimsCollection(mongo).findOne({ _id: versionClaimId(doc._id, genOf(doc), doc.version + 1) });
    if (!next || next.kind !== 'version') break;
    doc = { ...doc, ...next.fields };
  }
  if (doc !== head) {
    const { _id, tenantId: _t, provider: _p, claimGen: _g, ...fields } = doc;
    await writeHead(mongo, _id, fields).catch(() => {});
  }
  return doc;
}

/** The current lease on the document's version, from its claims (the head's `pendingRefresh` is only a hint). */
async function withCurrentLease(mongo: Mongo, doc: TokenDoc): Promise<TokenDoc> {
  const hint = doc.pendingRefresh;
  const onThisVersion = hint !== null && hint !== undefined && hint.fromVersion === doc.version;
  let current: RefreshLease | null = null;
  for (let n = onThisVersion && hint.n !== undefined ? hint.n : 1; ; n++) {
    const c = await claimsCollection(mongo).findOne({ _id: leaseClaimId(doc._id, genOf(doc), doc.version, n) });
    if (!c || c.kind !== 'lease') break;
    current = c.lease;
  }
  return current ? { ...doc, pendingRefresh: current } : doc;
}

const aad = (id: string, version: number) => Buffer.from(`${id}#${version}`);

export function sealTokens(
  ring: KeyRing,
  id: string,
  version: number,
  t: PlainTokens,
): { keyId: string; sealed: Binary } {
  const { keyId, data } = seal(
    ring,
    Buffer.from(JSON.stringify({ a: t.accessToken, r: t.refreshToken })),
    aad(id, version),
  );
  return { keyId, sealed: new Binary(data) };
}

export function openTokens(ring: KeyRing, doc: Pick<TokenDoc, '_id' | 'version' | 'keyId' | 'sealed'>): PlainTokens {
  const plain = open(ring, doc.keyId, Buffer.from(doc.sealed.buffer), aad(doc._id, doc.version));
  const p = SealedPayload.parse(JSON.parse(plain.toString('utf8')));
  return { accessToken: p.a, refreshToken: p.r };
}

/** A token document's version and times as the machine's `TokenInfo` (epoch ms). */
export function metaOf(doc: Pick<TokenDoc, keyof TokenMeta>): TokenMeta {
  return {
    version: doc.version,
    accessTokenExpiresAt: doc.accessTokenExpiresAt.getTime(),
    accessTokenLifetimeSec: doc.accessTokenLifetimeSec,
    refreshTokenExpiresAt: doc.refreshTokenExpiresAt?.getTime() ?? null,
    refreshTokenLifetimeSec: doc.refreshTokenLifetimeSec,
    obtainedAt: doc.obtainedAt.getTime(),
  };
}

/**
 * The newest version of a connection's tokens (the head, rolled forward over any newer version claim). `withLease`: with
 * `pendingRefresh` read from the lease claims (what a refresh attempt decides on), not the head's hint.
 */
export async function readTokenDoc(
  mongo: Mongo,
  id: string,
  opts: { withLease?: boolean } = {},
): Promise<TokenDoc | null> {
  const head = await tokensCollection(mongo).findOne({ _id: id });
  if (!head) return null;
  const doc = await rollForward(mongo, head);
  return opts.withLease ? withCurrentLease(mongo, doc) : doc;
}

/** The refresh token in use before a refresh, kept when the answer carries none (with its own expiry). */
export interface PreviousRefresh {
  refreshToken: string | null;
  refreshTokenExpiresAt: Date | null;
  refreshTokenLifetimeSec: number | null;
}

function fieldsFor(
  ring: KeyRing,
  id: string,
  version: number,
  set: TokenSet,
  previous: PreviousRefresh | null,
  now: Date,
) {
  // Sage 200 (Sage ID) may answer a refresh without a new refresh token: the old one then stays valid, and so does
  // its expiry (it is not renewed by the refresh).
  const keepOld = set.refreshToken === null && previous !== null && previous.refreshToken !== null;
  const refreshToken = keepOld ? previous.refreshToken : set.refreshToken;
  const refreshTokenExpiresAt = keepOld
    ? previous.refreshTokenExpiresAt
    : refreshToken
      ? new Date(now.getTime() + set.refreshTokenExpiresIn * 1000)
      : null;
  return {
    version,
    ...sealTokens(ring, id, version, { accessToken: set.accessToken, refreshToken }),
    accessTokenExpiresAt: new Date(now.getTime() + set.expiresIn * 1000),
    accessTokenLifetimeSec: set.expiresIn,
    refreshTokenExpiresAt,
    refreshTokenLifetimeSec: keepOld
      ? previous.refreshTokenLifetimeSec
      : refreshToken
        ? set.refreshTokenExpiresIn
        : null,
    obtainedAt: now,
    pendingRefresh: null,
    updatedAt: now,
  };
}

// Consent writes (code exchange, staged re-consent) live in `consent-store.ts`.

/**
 * Takes the refresh lease on `fromVersion` if it is free as seen in `seen` (read with `readTokenDoc(…, {withLease})`):
 * inserts the next claim of the version's lease chain, so of all callers that saw the same lease free exactly one wins.
 * Returns the lease, or null when someone else took it or the store moved on first (read again).
 */
export async function acquireRefreshLease(
  mongo: Mongo,
  p: {
    id: string;
    fromVersion: number;
    attemptId: string;
    seen: Pick<TokenDoc, 'pendingRefresh' | 'claimGen'>;
    now?: Date;
    leaseMs?: number;
  },
): Promise<RefreshLease | null> {
  const now = p.now ?? new Date();
  const state = leaseState(p.seen, p.fromVersion, now);
  if (state.kind === 'live') return null;
  const gen = genOf(p.seen);
  const prev = p.seen.pendingRefresh;
  // The lease after the one seen (a marker from before claims counts as number 0).
  const n = (prev && prev.fromVersion === p.fromVersion ? (prev.n ?? 0) : 0) + 1;
  const lease: RefreshLease = {
    fromVersion: p.fromVersion,
    attemptId: p.attemptId,
    startedAt: now,
    expiresAt: new Date(now.getTime() + (p.leaseMs ?? REFRESH_LEASE_MS)),
    released: false,
    doubt: state.doubt,
    n,
    claimId: leaseClaimId(p.id, gen, p.fromVersion, n),
  };
  try {
    await claimsCollection(mongo).insertOne({ _id: lease.claimId!, kind: 'lease', lease, at: now });
  } catch (err) {
    if (isDuplicateKey(err)) return null;
    throw err;
  }
  // The hint the read path sees (a refresh started on this version), and a check that the store is still at it.
  const res = await tokensCollection(mongo).updateOne({ _id: p.id, version: p.fromVersion } as never, {
    $set: { pendingRefresh: lease, updatedAt: now },
  });
  if (res.matchedCount !== 1) return null;
  const newer = await claimsCollection(mongo).findOne(
    { _id: versionClaimId(p.id, gen, p.fromVersion + 1) },
    { projection: { _id: 1 } },
  );
  return newer ? null : lease;
}

/**
 * Ends our lease after a Sage call that brought no answer, so the next attempt need not wait for it to expire.
 * `mayHaveReachedSage`: the call could have rotated the token (timeout, reset, 5xx), kept as `doubt` for later owners.
 * Only the owner writes its claim; the head's hint follows.
 */
export async function releaseRefreshLease(
  mongo: Mongo,
  p: { id: string; lease: RefreshLease; mayHaveReachedSage: boolean },
): Promise<void> {
  const now = new Date();
  const doubt = p.lease.doubt === true || p.mayHaveReachedSage;
  if (p.lease.claimId) {
    await claimsCollection(mongo).updateOne({ _id: p.lease.claimId, kind: 'lease' } as never, {
      $set: { 'lease.released': true, 'lease.expiresAt': now, 'lease.doubt': doubt } as never,
    });
  }
  await tokensCollection(mongo).updateOne(
    { _id: p.id, version: p.lease.fromVersion, 'pendingRefresh.attemptId': p.lease.attemptId } as never,
    {
      $set: {
        'pendingRefresh.released': true,
        'pendingRefresh.expiresAt': now,
        'pendingRefresh.doubt': doubt,
        updatedAt: now,
      },
    },
  );
}

/**
 * Stores a refresh answer as `fromVersion + 1`, only if no version `fromVersion + 1` exists yet (its claim insert is the
 * compare-and-set). Returns the stored document, or the newer document already there (a lost race: nothing written).
 * Storing the same answer again (a retry after the head write failed, a carried answer) reports it as stored.
 */
export async function commitRefresh(
  mongo: Mongo,
  ring: KeyRing,
  p: { id: string; fromVersion: number; tokens: TokenSet; previous: PreviousRefresh; now?: Date },
): Promise<{ stored: boolean; doc: TokenDoc }> {
  const current = await readTokenDoc(mongo, p.id);
  if (!current) throw new TokenStoreConflictError(`token document ${p.id} disappeared while storing a refresh`);
  const gen = genOf(current);
  if (current.version === p.fromVersion) {
    const fields = fieldsFor(ring, p.id, p.fromVersion + 1, p.tokens, p.previous, p.now ?? new Date());
    if (await claimVersion(mongo, p.id, gen, fields, fields.updatedAt)) {
      await writeHead(mongo, p.id, fields);
      await collectOldClaims(mongo, p.id, gen, fields.version);
      return { stored: true, doc: { ...current, ...fields } };
    }
  }
  const doc = current.version > p.fromVersion ? current : await readTokenDoc(mongo, p.id);
  if (!doc) throw new TokenStoreConflictError(`token document ${p.id} disappeared while storing a refresh`);
  if (doc.version > p.fromVersion) {
    const same = doc.version === p.fromVersion + 1 && safeOpen(ring, doc)?.accessToken === p.tokens.accessToken;
    return { stored: same, doc };
  }
  throw new TokenStoreConflictError(`token document ${p.id} is at version ${doc.version}, expected ${p.fromVersion}`);
}

function safeOpen(ring: KeyRing, doc: TokenDoc): PlainTokens | null {
  try {
    return openTokens(ring, doc);
  } catch {
    return null;
  }
}

/** Deletes the connection's tokens: the head and the claims still kept (the last two versions, leases, staged re-consent). */
export async function deleteTokenDoc(mongo: Mongo, id: string): Promise<void> {
  const doc = await readTokenDoc(mongo, id);
  if (doc) {
    const gen = genOf(doc);
    const claims = claimsCollection(mongo);
    for (const v of [doc.version, doc.version - 1].filter((x) => x >= 1)) {
      await claims.deleteOne({ _id: versionClaimId(id, gen, v) });
      for (let n = 1; n <= 20; n++)
        if ((await claims.deleteOne({ _id: leaseClaimId(id, gen, v, n) })).deletedCount === 0) break;
    }
    await claims.deleteOne({ _id: `${id}#${gen}#candidate` });
  }
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
    previous: z.object({
      refreshToken: z.string().nullable(),
      refreshTokenExpiresAt: z.coerce.date().nullable(),
      refreshTokenLifetimeSec: z.number().nullable(),
    }),
  })
  .strict();

const carriedAad = (id: string, fromVersion: number) => Buffer.from(`${id}#${fromVersion}#carried-refresh-answer`);

export function sealCarriedAnswer(
  ring: KeyRing,
  id: string,
  fromVersion: number,
  answer: { tokens: TokenSet; previous: PreviousRefresh },
): CarriedAnswer {
  const { keyId, data } = seal(ring, Buffer.from(JSON.stringify(answer)), carriedAad(id, fromVersion));
  return { carried: 'refresh-answer/1', fromVersion, keyId, sealed: data.toString('base64') };
}

/** The answer carried in heartbeat details for this connection and version, or null (none, other version, not ours). */
export function openCarriedAnswer(
  ring: KeyRing,
  id: string,
  fromVersion: number,
  details: unknown,
): { tokens: TokenSet; previous: PreviousRefresh } | null {
  const d = details as Partial<CarriedAnswer> | null | undefined;
  if (
    !d ||
    d.carried !== 'refresh-answer/1' ||
    d.fromVersion !== fromVersion ||
    typeof d.keyId !== 'string' ||
    typeof d.sealed !== 'string'
  )
    return null;
  const plain = open(ring, d.keyId, Buffer.from(d.sealed, 'base64'), carriedAad(id, fromVersion));
  const p = CarriedPlain.parse(JSON.parse(plain.toString('utf8')));
  const tokens: TokenSet = { ...p.tokens, ...(p.tokens.scope === undefined ? {} : { scope: p.tokens.scope }) };
  return { tokens, previous: p.previous };
}
