/**
 * Is every compare-and-set of the token store single-winner on the real Mongo-wire server (FerretDB in our tests)?
 *
 * FerretDB 1.24 runs an update as SELECT (no lock) → apply in memory → UPDATE by `_id`; its `$inc` was measured handing
 * out duplicates (src/sync/change-seq.ts). If a filtered `updateOne` is equally read-modify-write, two concurrent writers
 * with the same filter (`version`, lease owner) both "match", and two workers could take the same refresh lease and
 * present the same refresh token twice. So: N concurrent calls, spread over several MongoClients (separate connection
 * pools, so the server runs them in parallel on separate PostgreSQL connections), for the same document and version, and
 * exactly one may win. Every round starts from a fresh document. Counts of double winners are printed (TOKEN_CAS_REPORT=1).
 *
 * Measured before the store's claims (src/tokens/store.ts) on FerretDB 1.24.2: more than one winner in 58 of 100 rounds
 * of the five compare-and-sets (up to 47 of 50 callers); with them, 0 in 216 rounds. About 80–200 s on 2 shared cores.
 *
 * Knobs: TOKEN_CAS_ROUNDS (default 20; 8 for the two consent tests), TOKEN_CAS_CALLERS (default 50), TOKEN_CAS_CLIENTS (default 5).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { keyRing } from '../../src/lib/crypto.js';
import { connectMongo, type Mongo } from '../../src/lib/mongo.js';
import type { TokenSet } from '../../src/providers/oauth.js';
import {
  acquireRefreshLease,
  claimsCollection,
  claimVersion,
  commitRefresh,
  deleteTokenDoc,
  genOf,
  openTokens,
  readTokenDoc,
  releaseRefreshLease,
  sealTokens,
  tokensCollection,
  type RefreshLease,
} from '../../src/tokens/store.js';
import {
  openCandidate,
  promoteConsentCandidate,
  readConsentDoc,
  stageConsentCandidate,
  storeConsentTokens,
} from '../../src/tokens/consent-store.js';
import { uniqueName } from '../helpers/env.js';

const ROUNDS = Number(process.env.TOKEN_CAS_ROUNDS ?? 20);
/** The consent tests cost five read-compare-write rounds per loser: fewer rounds (before the fix every one failed). */
const CONSENT_ROUNDS = Number(process.env.TOKEN_CAS_ROUNDS ?? 8);
const CALLERS = Number(process.env.TOKEN_CAS_CALLERS ?? 50);
const CLIENTS = Number(process.env.TOKEN_CAS_CLIENTS ?? 5);
const ring = keyRing({ id: 'k', key: Buffer.alloc(32, 3) });
const uri = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017';
const dbName = uniqueName('test_tokencas');

let clients: Mongo[] = [];
before(async () => {
  clients = await Promise.all(
    Array.from({ length: CLIENTS }, (_v, i) => connectMongo(uri, dbName, { appName: `token-cas-${i}` })),
  );
  // Warm every pool so the first round already runs in parallel (no connection handshakes serialising it).
  await Promise.all(clients.flatMap((m) => Array.from({ length: 10 }, () => m.db.command({ ping: 1 }))));
});
after(async () => {
  await clients[0]?.db.dropDatabase().catch(() => {});
  await Promise.all(clients.map((m) => m.close()));
});

const report: Record<string, { rounds: number; doubleWinnerRounds: number; maxWinners: number }> = {};
/** Counts a round; true when it had exactly one winner (every round runs, so the report counts all of them). */
function record(name: string, winners: number): boolean {
  const r = (report[name] ??= { rounds: 0, doubleWinnerRounds: 0, maxWinners: 0 });
  r.rounds++;
  if (winners > 1) r.doubleWinnerRounds++;
  r.maxWinners = Math.max(r.maxWinners, winners);
  return winners === 1;
}
const verdict = (name: string) =>
  assert.equal(
    report[name]!.doubleWinnerRounds,
    0,
    `${name}: ${report[name]!.doubleWinnerRounds} of ${report[name]!.rounds} rounds had more than one winner (up to ${report[name]!.maxWinners})`,
  );
after(() => {
  if (process.env.TOKEN_CAS_REPORT)
    console.log(`token CAS on ${uri}: ${CALLERS} callers × ${CLIENTS} clients\n${JSON.stringify(report, null, 1)}`);
});

const tokenSet = (tag: string): TokenSet => ({
  accessToken: `at-${tag}`,
  refreshToken: `rt-${tag}`,
  expiresIn: 300,
  refreshTokenExpiresIn: 2_678_400,
});

/** A fresh connection with tokens at version 1. */
async function freshConnection(): Promise<string> {
  const id = `sage-connection:sage-accounting:${uniqueName('cas')}`;
  await storeConsentTokens(clients[0]!, ring, {
    id,
    tenantId: 'cas',
    provider: 'sage-accounting',
    tokens: tokenSet('v1'),
    exchangeId: `x-${randomUUID()}`,
  });
  return id;
}

/** Starts all callers at once (each on its client), settles them all. */
async function race<T>(fn: (mongo: Mongo, i: number) => Promise<T>): Promise<PromiseSettledResult<T>[]> {
  let go!: () => void;
  const gate = new Promise<void>((r) => (go = r));
  const all = Array.from({ length: CALLERS }, (_v, i) => gate.then(() => fn(clients[i % clients.length]!, i)));
  go();
  return Promise.allSettled(all);
}
const fulfilled = <T>(rs: PromiseSettledResult<T>[]) => rs.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
const rejected = (rs: PromiseSettledResult<unknown>[]) =>
  rs.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));

test(`refresh lease: ${CALLERS} concurrent first takers of one version, exactly one wins (${ROUNDS} rounds)`, async () => {
  for (let round = 0; round < ROUNDS; round++) {
    const id = await freshConnection();
    const seen = (await readTokenDoc(clients[0]!, id))!;
    const rs = await race((m, i) => acquireRefreshLease(m, { id, fromVersion: 1, attemptId: `first-${i}`, seen }));
    assert.deepEqual(rejected(rs), [], 'no caller fails');
    const winners = fulfilled(rs).filter((l): l is RefreshLease => l !== null);
    if (!record('lease: first take', winners.length)) continue;
    const after_ = (await readTokenDoc(clients[0]!, id))!;
    assert.equal(after_.pendingRefresh?.attemptId, winners[0]!.attemptId, 'the store names the one winner as owner');
  }
  verdict('lease: first take');
});

test(`refresh lease: ${CALLERS} concurrent takeovers of an expired lease, exactly one wins, with doubt (${ROUNDS} rounds)`, async () => {
  for (let round = 0; round < ROUNDS; round++) {
    const id = await freshConnection();
    const first = await acquireRefreshLease(clients[0]!, {
      id,
      fromVersion: 1,
      attemptId: 'stalled-owner',
      seen: (await readTokenDoc(clients[0]!, id))!,
      leaseMs: 1,
    });
    assert.ok(first, 'the first lease is taken');
    await sleep(5); // it expires without a word from its owner
    const seen = (await readTokenDoc(clients[0]!, id))!;
    const rs = await race((m, i) => acquireRefreshLease(m, { id, fromVersion: 1, attemptId: `taker-${i}`, seen }));
    assert.deepEqual(rejected(rs), [], 'no caller fails');
    const winners = fulfilled(rs).filter((l): l is RefreshLease => l !== null);
    if (!record('lease: takeover of an expired lease', winners.length)) continue;
    assert.equal(winners[0]!.doubt, true, 'an expired lease may have reached Sage: the taker carries that doubt');
  }
  verdict('lease: takeover of an expired lease');
});

test(`refresh lease: ${CALLERS} concurrent takers after a release, exactly one wins (${ROUNDS} rounds)`, async () => {
  for (let round = 0; round < ROUNDS; round++) {
    const id = await freshConnection();
    const first = await acquireRefreshLease(clients[0]!, {
      id,
      fromVersion: 1,
      attemptId: 'owner',
      seen: (await readTokenDoc(clients[0]!, id))!,
    });
    assert.ok(first);
    await releaseRefreshLease(clients[0]!, { id, lease: first, mayHaveReachedSage: false });
    const seen = (await readTokenDoc(clients[0]!, id))!;
    const rs = await race((m, i) => acquireRefreshLease(m, { id, fromVersion: 1, attemptId: `next-${i}`, seen }));
    assert.deepEqual(rejected(rs), [], 'no caller fails');
    const winners = fulfilled(rs).filter((l): l is RefreshLease => l !== null);
    if (!record('lease: take after release', winners.length)) continue;
    assert.equal(winners[0]!.doubt, false, 'the owner said its call never reached Sage');
  }
  verdict('lease: take after release');
});

test(`versioned token write: ${CALLERS} concurrent commits of version 1 → 2, exactly one is stored (${ROUNDS} rounds)`, async () => {
  for (let round = 0; round < ROUNDS; round++) {
    const id = await freshConnection();
    const previous = { refreshToken: 'rt-v1', refreshTokenExpiresAt: null, refreshTokenLifetimeSec: null };
    const rs = await race((m, i) =>
      commitRefresh(m, ring, { id, fromVersion: 1, tokens: tokenSet(`c${i}`), previous }),
    );
    assert.deepEqual(rejected(rs), [], 'no caller fails');
    const stored = fulfilled(rs)
      .map((r, i) => ({ ...r, i }))
      .filter((r) => r.stored);
    if (!record('commitRefresh 1 → 2', stored.length)) continue;
    const doc = (await readTokenDoc(clients[0]!, id))!;
    assert.equal(doc.version, 2);
    const winnerTokens = openTokens(ring, stored[0]!.doc);
    assert.deepEqual(openTokens(ring, doc), winnerTokens, 'the stored version 2 is the one the winner was told about');
    for (const r of fulfilled(rs))
      assert.deepEqual(openTokens(ring, r.doc), winnerTokens, 'every loser is handed the winner’s version 2');
  }
  verdict('commitRefresh 1 → 2');
});

test(`consent write: ${CALLERS} concurrent consents, no two are told they wrote the same version (${CONSENT_ROUNDS} rounds)`, async () => {
  for (let round = 0; round < CONSENT_ROUNDS; round++) {
    const id = await freshConnection();
    const rs = await race((m, i) =>
      storeConsentTokens(m, ring, {
        id,
        tenantId: 'cas',
        provider: 'sage-accounting',
        tokens: tokenSet(`s${i}`),
        exchangeId: `x-${round}-${i}`,
      }),
    );
    // Losers of five read-compare-write rounds in a row give up (TokenStoreConflictError): allowed, they are retried.
    for (const err of rejected(rs)) assert.equal(err.name, 'TokenStoreConflictError', err.message);
    const ok = fulfilled(rs);
    assert.ok(ok.length >= 1, 'someone stores');
    const byVersion = new Map<number, number>();
    for (const d of ok) byVersion.set(d.version, (byVersion.get(d.version) ?? 0) + 1);
    const maxSame = Math.max(...byVersion.values());
    if (!record('storeConsentTokens: callers told they wrote the same version', maxSame)) continue;
    const final = (await readConsentDoc(clients[0]!, id))!;
    const top = ok.reduce((a, b) => (b.version > a.version ? b : a));
    assert.equal(final.version, top.version, 'the store holds the highest version a caller was told about');
    assert.equal(final.consentExchangeId, top.consentExchangeId, 'and it is that caller’s consent');
  }
  verdict('storeConsentTokens: callers told they wrote the same version');
});

test(`re-consent promotion: ${CALLERS} concurrent promotions of one candidate make exactly one new version (${CONSENT_ROUNDS} rounds)`, async () => {
  for (let round = 0; round < CONSENT_ROUNDS; round++) {
    const id = await freshConnection();
    const exchangeId = `cand-${round}`;
    const candidate = await stageConsentCandidate(clients[0]!, ring, { id, tokens: tokenSet('cand'), exchangeId });
    assert.equal(openCandidate(ring, id, candidate).refreshToken, 'rt-cand');
    const rs = await race((m) => promoteConsentCandidate(m, ring, { id, exchangeId }));
    for (const err of rejected(rs)) assert.equal(err.name, 'TokenStoreConflictError', err.message);
    const ok = fulfilled(rs);
    const versions = new Set(ok.map((d) => d?.version));
    record('promoteConsentCandidate: distinct versions reported', versions.size);
    assert.deepEqual([...versions], [2], `round ${round}: promotions reported versions ${[...versions].join(', ')}`);
    const final = (await readConsentDoc(clients[0]!, id))!;
    assert.equal(final.version, 2, 'one promotion, one new version');
    assert.equal(openTokens(ring, final).refreshToken, 'rt-cand');
  }
});

test('claims are collected: two versions behind the head, and all of them when the tokens are deleted', async () => {
  const m = clients[0]!;
  const id = await freshConnection();
  const claimIds = async () =>
    (
      await claimsCollection(m)
        .find({ _id: { $regex: `^${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}#` } })
        .toArray()
    )
      .map((c) => c._id)
      .sort();
  for (let v = 1; v <= 4; v++) {
    const lease = await acquireRefreshLease(m, {
      id,
      fromVersion: v,
      attemptId: `a${v}`,
      seen: (await readTokenDoc(m, id, { withLease: true }))!,
    });
    assert.ok(lease, `lease on version ${v}`);
    const r = await commitRefresh(m, ring, {
      id,
      fromVersion: v,
      tokens: tokenSet(`gc${v}`),
      previous: { refreshToken: null, refreshTokenExpiresAt: null, refreshTokenLifetimeSec: null },
    });
    assert.equal(r.stored, true);
  }
  const doc = (await readTokenDoc(m, id))!;
  assert.equal(doc.version, 5);
  const gen = doc.claimGen!;
  // Kept: the last two version claims; leases of versions before the head are gone.
  assert.deepEqual(await claimIds(), [`${id}#${gen}#v4`, `${id}#${gen}#v5`]);
  await stageConsentCandidate(m, ring, { id, tokens: tokenSet('cand'), exchangeId: 'gc-cand' });
  await acquireRefreshLease(m, {
    id,
    fromVersion: 5,
    attemptId: 'a5',
    seen: (await readTokenDoc(m, id, { withLease: true }))!,
  });
  assert.equal((await claimIds()).length, 4);
  await deleteTokenDoc(m, id);
  assert.equal(await readTokenDoc(m, id), null);
  assert.deepEqual(await claimIds(), [], 'no sealed token is left behind after a disconnect');
  // Consented again: a new generation, versions from 1, no old claim in the way.
  const again = await storeConsentTokens(m, ring, {
    id,
    tenantId: 'cas',
    provider: 'sage-accounting',
    tokens: tokenSet('again'),
    exchangeId: 'again',
  });
  assert.equal(again.version, 1);
  assert.notEqual(again.claimGen, gen);
  const r = await commitRefresh(m, ring, {
    id,
    fromVersion: 1,
    tokens: tokenSet('again2'),
    previous: { refreshToken: null, refreshTokenExpiresAt: null, refreshTokenLifetimeSec: null },
  });
  assert.equal(r.stored, true);
  assert.equal(openTokens(ring, (await readTokenDoc(m, id))!).accessToken, 'at-again2');
});

test('a writer that died between its version claim and the head write costs nothing: readers roll the head forward', async () => {
  const m = clients[0]!;
  const id = await freshConnection();
  const head = (await readTokenDoc(m, id))!;
  // Simulate the crash: only the claim of version 2 is written.
  const fields = {
    ...head,
    version: 2,
    ...sealTokens(ring, id, 2, { accessToken: 'at-orphan', refreshToken: 'rt-orphan' }),
    pendingRefresh: null,
  };
  const { _id, tenantId: _t, provider: _p, claimGen: _g, ...versionFields } = fields;
  assert.equal(await claimVersion(m, id, genOf(head), versionFields, new Date()), true);
  assert.equal((await tokensCollection(m).findOne({ _id: id }))!.version, 1, 'the head is behind');
  const read = (await readTokenDoc(m, id))!;
  assert.equal(read.version, 2);
  assert.equal(openTokens(ring, read).refreshToken, 'rt-orphan');
  assert.equal((await tokensCollection(m).findOne({ _id: id }))!.version, 2, 'and repaired');
  // A refresh from the old version is told the store moved on; it does not overwrite version 2.
  const r = await commitRefresh(m, ring, {
    id,
    fromVersion: 1,
    tokens: tokenSet('late'),
    previous: { refreshToken: null, refreshTokenExpiresAt: null, refreshTokenLifetimeSec: null },
  });
  assert.equal(r.stored, false);
  assert.equal(r.doc.version, 2);
  assert.equal(
    await acquireRefreshLease(m, { id, fromVersion: 1, attemptId: 'late', seen: head }),
    null,
    'no lease on a version the store has left',
  );
});
