/**
 * Consent writes to the token store (the refresh side lives in `store.ts`). Two guarantees:
 *
 * - **Idempotent code exchange.** Every stored consent records `consentExchangeId`, a SHA-256 of the workflow id and the
 *   code (never the code itself; Sage's codes are single-use random strings, so the hash reveals nothing). A retry after a
 *   crash finds its own exchange by that hash and returns the stored version instead of presenting the code again.
 * - **Re-consent is staged.** A re-consent of a connection that already has partitions is stored as a `consentCandidate`
 *   beside the current tokens, sealed under its own AAD. It becomes the current version only when the workflow promotes
 *   it (after checking what it reaches); a refused one is revoked at Sage and dropped. Refreshes meanwhile keep working
 *   on the current version. The candidate lives in its own claim document (`{id}#{gen}#candidate`), not in the head, so
 *   no head write can lose it (on FerretDB a write rewrites the whole document).
 *
 * Each new version is claimed by a unique insert (`store.ts`): concurrent consents never both believe they wrote it.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { KeyRing } from '../lib/crypto.js';
import type { Mongo } from '../lib/mongo.js';
import type { Provider } from '../messages.js';
import type { TokenSet } from '../providers/oauth.js';
import {
  claimsCollection,
  claimVersion,
  collectOldClaims,
  genOf,
  isDuplicateKey,
  openTokens,
  readTokenDoc,
  sealTokens,
  tokensCollection,
  TokenStoreConflictError,
  writeHead,
  type PlainTokens,
  type TokenDoc,
  type VersionFields,
} from './store.js';

/** Hash naming one code exchange (what the store records instead of the code). */
export function consentExchangeId(workflowId: string, code: string): string {
  return createHash('sha256').update(`sage-sync consent\n${workflowId}\n${code}`).digest('hex');
}

/** A staged re-consent: sealed tokens and their absolute expiry times, not yet the current version. */
export interface ConsentCandidate extends Pick<
  TokenDoc,
  | 'keyId'
  | 'sealed'
  | 'accessTokenExpiresAt'
  | 'accessTokenLifetimeSec'
  | 'refreshTokenExpiresAt'
  | 'refreshTokenLifetimeSec'
  | 'obtainedAt'
> {
  exchangeId: string;
}

export type ConsentTokenDoc = TokenDoc & {
  consentExchangeId?: string | null;
  consentCandidate?: ConsentCandidate | null;
};

const candidateAadId = (id: string, exchangeId: string) => `${id}#candidate#${exchangeId}`;

function timesOf(set: TokenSet, now: Date) {
  return {
    accessTokenExpiresAt: new Date(now.getTime() + set.expiresIn * 1000),
    accessTokenLifetimeSec: set.expiresIn,
    refreshTokenExpiresAt: set.refreshToken ? new Date(now.getTime() + set.refreshTokenExpiresIn * 1000) : null,
    refreshTokenLifetimeSec: set.refreshToken ? set.refreshTokenExpiresIn : null,
    obtainedAt: now,
  };
}

const candidateSlotId = (id: string, gen: string) => `${id}#${gen}#candidate`;

/** The current tokens (rolled forward) with the staged re-consent, if any. */
export async function readConsentDoc(mongo: Mongo, id: string): Promise<ConsentTokenDoc | null> {
  const doc = (await readTokenDoc(mongo, id)) as ConsentTokenDoc | null;
  if (!doc) return null;
  const slot = await claimsCollection(mongo).findOne({ _id: candidateSlotId(id, genOf(doc)) });
  // A candidate staged in the head by an older build is still honoured until it is promoted or dropped.
  const candidate = slot?.kind === 'candidate' ? (slot.candidate as ConsentCandidate) : (doc.consentCandidate ?? null);
  return { ...doc, consentCandidate: candidate };
}

/** The fields of a current version `version` holding `plain` (sealed under the version's AAD). */
function currentFields(
  ring: KeyRing,
  id: string,
  version: number,
  plain: PlainTokens,
  times: ReturnType<typeof timesOf>,
  exchangeId: string,
  now: Date,
) {
  return {
    version,
    ...sealTokens(ring, id, version, plain),
    ...times,
    pendingRefresh: null,
    consentExchangeId: exchangeId,
    consentCandidate: null,
    updatedAt: now,
  };
}

/**
 * Writes the next version after the one read: a fresh document by insert, else by the version's claim (`store.ts`);
 * either insert has one winner. Retried a few times when someone else wrote that version first.
 */
async function writeNextVersion(
  mongo: Mongo,
  id: string,
  build: (existing: ConsentTokenDoc | null) => ConsentTokenDoc | 'done',
): Promise<ConsentTokenDoc> {
  const coll = tokensCollection(mongo);
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await readConsentDoc(mongo, id);
    const doc = build(existing);
    if (doc === 'done') return existing!;
    if (!existing) {
      const fresh = { ...doc, claimGen: randomUUID() };
      delete (fresh as Partial<ConsentTokenDoc>).consentCandidate;
      try {
        await coll.insertOne(fresh);
        return { ...fresh, consentCandidate: null };
      } catch (err) {
        if (isDuplicateKey(err)) continue; // someone inserted first: read again
        throw err;
      }
    }
    const { _id, tenantId: _t, provider: _p, claimGen: _g, ...fields } = doc;
    const gen = genOf(existing);
    if (!(await claimVersion(mongo, id, gen, fields as VersionFields, doc.updatedAt))) continue; // that version exists: read again
    await writeHead(mongo, id, fields as VersionFields);
    await collectOldClaims(mongo, id, gen, doc.version);
    return { ...existing, ...doc, claimGen: existing.claimGen, consentCandidate: null } as ConsentTokenDoc;
  }
  throw new TokenStoreConflictError(`token document ${id} kept changing while storing consent tokens`);
}

/**
 * Stores the tokens of a fresh consent as the next version (after whatever is stored, so versions only grow across
 * re-consents), recording the exchange id.
 */
export async function storeConsentTokens(
  mongo: Mongo,
  ring: KeyRing,
  p: { id: string; tenantId: string; provider: Provider; tokens: TokenSet; exchangeId: string; now?: Date },
): Promise<ConsentTokenDoc> {
  const doc = await writeNextVersion(mongo, p.id, (existing) => {
    const now = p.now ?? new Date();
    const version = (existing?.version ?? 0) + 1;
    const plain = { accessToken: p.tokens.accessToken, refreshToken: p.tokens.refreshToken };
    return {
      _id: p.id,
      tenantId: p.tenantId,
      provider: p.provider,
      ...currentFields(ring, p.id, version, plain, timesOf(p.tokens, now), p.exchangeId, now),
    };
  });
  // A fresh consent replaces whatever re-consent was staged.
  await claimsCollection(mongo)
    .deleteOne({ _id: candidateSlotId(p.id, genOf(doc)) })
    .catch(() => {});
  return doc;
}

/** Stages a re-consent beside the current tokens (replacing any earlier candidate). Needs an existing document. */
export async function stageConsentCandidate(
  mongo: Mongo,
  ring: KeyRing,
  p: { id: string; tokens: TokenSet; exchangeId: string; now?: Date },
): Promise<ConsentCandidate> {
  const now = p.now ?? new Date();
  const candidate: ConsentCandidate = {
    exchangeId: p.exchangeId,
    ...sealTokens(ring, candidateAadId(p.id, p.exchangeId), 0, {
      accessToken: p.tokens.accessToken,
      refreshToken: p.tokens.refreshToken,
    }),
    ...timesOf(p.tokens, now),
  };
  const doc = await readTokenDoc(mongo, p.id);
  if (!doc) throw new TokenStoreConflictError(`token document ${p.id} is missing; cannot stage a re-consent`);
  const slot = { _id: candidateSlotId(p.id, genOf(doc)), kind: 'candidate' as const, candidate, at: now };
  for (let attempt = 0; ; attempt++) {
    try {
      await claimsCollection(mongo).replaceOne({ _id: slot._id }, slot, { upsert: true });
      return candidate;
    } catch (err) {
      if (!isDuplicateKey(err) || attempt >= 2) throw err; // two upserts raced to insert the slot: the update path wins now
    }
  }
}

export function openCandidate(ring: KeyRing, id: string, c: ConsentCandidate): PlainTokens {
  return openTokens(ring, { _id: candidateAadId(id, c.exchangeId), version: 0, keyId: c.keyId, sealed: c.sealed });
}

/**
 * Makes the staged candidate the next current version. Idempotent: if the exchange is already the current one, that
 * document is returned. Null when there is no such candidate (dropped, or replaced by a newer consent).
 */
export async function promoteConsentCandidate(
  mongo: Mongo,
  ring: KeyRing,
  p: { id: string; exchangeId: string; now?: Date },
): Promise<ConsentTokenDoc | null> {
  let missing = false;
  const doc = await writeNextVersion(mongo, p.id, (existing) => {
    if (existing?.consentExchangeId === p.exchangeId) return 'done';
    const c = existing?.consentCandidate;
    if (!existing || !c || c.exchangeId !== p.exchangeId) {
      missing = true;
      return 'done';
    }
    const now = p.now ?? new Date();
    const { exchangeId: _e, keyId: _k, sealed: _s, ...times } = c;
    return {
      ...existing,
      ...currentFields(ring, p.id, existing.version + 1, openCandidate(ring, p.id, c), times, p.exchangeId, now),
    };
  });
  if (!missing)
    await claimsCollection(mongo)
      .deleteOne({ _id: candidateSlotId(p.id, genOf(doc)), 'candidate.exchangeId': p.exchangeId } as never)
      .catch(() => {});
  return missing ? null : { ...doc, consentCandidate: null };
}

/** Drops the candidate of this exchange (after it was revoked at Sage). */
export async function dropConsentCandidate(mongo: Mongo, p: { id: string; exchangeId: string }): Promise<void> {
  const doc = await readTokenDoc(mongo, p.id);
  if (!doc) return;
  await claimsCollection(mongo).deleteOne({
    _id: candidateSlotId(p.id, genOf(doc)),
    'candidate.exchangeId': p.exchangeId,
  } as never);
  // A candidate staged in the head by an older build.
  await tokensCollection(mongo).updateOne({ _id: p.id, 'consentCandidate.exchangeId': p.exchangeId } as never, {
    $set: { consentCandidate: null, updatedAt: new Date() } as never,
  });
}
