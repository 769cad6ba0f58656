/**
 * The token read path (issue 14): a caller whose stored token is good gets it from the store with no Temporal call;
 * only a refresh-due token, a rejected version or a not-connected store goes to the workflow, which still refreshes
 * exactly once however many callers and processes ask. Simulator over HTTP, real worker, Temporal and FerretDB;
 * refreshes and reused refresh tokens counted at the simulator; Temporal cost counted as history events.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ReauthorizationRequiredError } from '../../src/errors.js';
import { connectionWorkflowId, type ConnectionStatus, type Provider } from '../../src/messages.js';
import { keyRingFromConfig } from '../../src/lib/crypto.js';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { openTokens, readTokenDoc } from '../../src/tokens/store.js';
import { uniqueName } from '../helpers/env.js';
import { workerEnvFor } from '../helpers/spawn-worker.js';
import { tokenHarness, type TokenHarness } from '../helpers/token-harness.js';

let h: TokenHarness;
before(async () => {
  h = await tokenHarness();
});
after(async () => h?.close());

const deps = () => ({ client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config });
const counters = (p: Provider) => h.sim.admin.counters().byProvider[p];
const historyLength = async (tenantId: string, p: Provider = 'sage-accounting') =>
  (await h.stack.client.workflow.getHandle(connectionWorkflowId(p, tenantId)).describe()).historyLength;

async function connect(prefix: string, provider: Provider = 'sage-accounting'): Promise<string> {
  const tenantId = uniqueName(prefix);
  const res = await h.consent(tenantId, provider);
  assert.equal(res.status, 200, res.body);
  // The schedule's first sync starts at consent (its reports add history events): let it finish first.
  await h.waitForStatus(
    tenantId,
    provider,
    (s: ConnectionStatus) =>
      s.partitions.length > 0 && s.partitions.every((p) => s.lastSync[p.id]?.status === 'succeeded'),
    240_000, // generous: the machine is shared, and a first sync was seen to take over 90 s under load
  );
  return tenantId;
}

/** History length once it stopped moving (a signal or mirror activity of the first sync may still be landing). */
async function settledHistoryLength(tenantId: string): Promise<number> {
  let last = await historyLength(tenantId);
  for (;;) {
    await new Promise((r) => setTimeout(r, 1_000));
    const now = await historyLength(tenantId);
    if (now === last) return now;
    last = now;
  }
}

test('500 concurrent callers of a valid token: served from the store, 0 Temporal updates (history unchanged), 0 refreshes', async () => {
  const tenantId = await connect('readpath');
  const eventsBefore = await settledHistoryLength(tenantId);
  const refreshesBefore = counters('sage-accounting').refreshes;
  const results = await Promise.all(
    Array.from({ length: 500 }, () =>
      acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { minValidSeconds: 60 }),
    ),
  );
  assert.equal(await settledHistoryLength(tenantId), eventsBefore, 'no history event: no update reached the workflow');
  assert.equal(counters('sage-accounting').refreshes - refreshesBefore, 0, 'no refresh at Sage');
  assert.deepEqual(new Set(results.map((r) => r.tokenVersion)), new Set([1]));
  assert.deepEqual(new Set(results.map((r) => r.servedBy)), new Set(['store']));
  assert.notEqual(results[0], results[1], 'each caller gets its own result object (one answer, decided once, copied)');
  // The token is the real one and works at Sage.
  const api = await fetch(`${h.sim.url}/sage-accounting/v3.1/businesses`, {
    headers: { authorization: `Bearer ${results[0]!.accessToken}` },
  });
  assert.equal(api.status, 200);
});

test('one storm, two kinds of caller: the shared answer is per request — invalid input still gets InvalidInput, not the stored token', async () => {
  const tenantId = await connect('readmix');
  // All 200 join the same in-flight store read; the read path decides once per minValidSeconds, so a caller whose
  // input the workflow's validator refuses (1.5 is not an integer) must not inherit the valid callers' answer.
  const calls = Array.from({ length: 200 }, (_, i) =>
    acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { minValidSeconds: i % 2 ? 1.5 : 60 }).then(
      (r) => ({ ok: true as const, servedBy: r.servedBy }),
      (err: Error) => ({
        ok: false as const,
        message: String(err.cause instanceof Error ? err.cause.message : err.message),
      }),
    ),
  );
  const results = await Promise.all(calls);
  const valid = results.filter((_, i) => i % 2 === 0);
  const invalid = results.filter((_, i) => i % 2 === 1);
  assert.deepEqual(new Set(valid.map((r) => (r.ok ? r.servedBy : r.message))), new Set(['store']));
  assert.equal(invalid.filter((r) => r.ok).length, 0, 'no invalid caller got a token');
  assert.ok(
    invalid.every((r) => !r.ok && /minValidSeconds|integer|invalid/i.test(r.message)),
    JSON.stringify(invalid[0]),
  );
});

test('a rejected version still goes to the workflow: 50 callers → exactly 1 refresh, 0 reused; then reads come from the store again', async () => {
  const tenantId = await connect('readrej');
  const before = counters('sage-accounting');
  const eventsBefore = await settledHistoryLength(tenantId);
  const forced = await Promise.all(
    Array.from({ length: 50 }, () =>
      acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: 1 }),
    ),
  );
  assert.equal(counters('sage-accounting').refreshes - before.refreshes, 1);
  assert.equal(counters('sage-accounting').reusedRefreshTokens - before.reusedRefreshTokens, 0);
  assert.deepEqual(new Set(forced.map((r) => r.tokenVersion)), new Set([2]));
  assert.deepEqual(new Set(forced.map((r) => r.servedBy)), new Set(['workflow']));
  assert.ok((await settledHistoryLength(tenantId)) > eventsBefore, 'the rejection reached the workflow');
  // A stale holder of version 1 (read before the refresh landed, then 401) gets version 2 without a second refresh.
  const stale = await acquireAccessToken(
    deps(),
    { tenantId, provider: 'sage-accounting' },
    { rejectedTokenVersion: 1 },
  );
  assert.equal(stale.tokenVersion, 2);
  assert.equal(counters('sage-accounting').refreshes - before.refreshes, 1);
  // Plain reads now get version 2 from the store.
  const read = await acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' });
  assert.equal(read.tokenVersion, 2);
  assert.equal(read.servedBy, 'store');
});

test('a revoked grant: its valid-looking stored token is never served from the store once the workflow knows', async () => {
  const tenantId = await connect('readrevoked');
  const id = connectionWorkflowId('sage-accounting', tenantId);
  const doc = await readTokenDoc(h.stack.mongo, id);
  const { refreshToken } = openTokens(keyRingFromConfig(h.stack.config), doc!);
  h.sim.admin.revoke({ provider: 'sage-accounting', refreshToken: refreshToken! });
  // A sync got a 401 on version 1 → the workflow refreshes → invalid_grant → reauthorization_required.
  await assert.rejects(
    acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: 1 }),
    ReauthorizationRequiredError,
  );
  // The stored token still looks valid for minutes (nothing deletes it on reauthorization)...
  const stored = await readTokenDoc(h.stack.mongo, id);
  assert.ok(
    stored && stored.accessTokenExpiresAt.getTime() - Date.now() > 60_000,
    'the stored access token has minutes left',
  );
  // ...but the very next plain read (no waiting for the mirror) is refused with the workflow's reason.
  await assert.rejects(acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }), (err: unknown) => {
    assert.ok(err instanceof ReauthorizationRequiredError);
    assert.equal(err.reason, 'refresh_token_invalid');
    return true;
  });
});

test('15-s tokens: a storm of 50 callers (minValidSeconds 5) spread over 8 s → exactly 1 refresh at Sage and 1 version', async () => {
  h.sim.admin.settings({ sageAccounting: { accessTokenTtlSeconds: 15 } });
  try {
    const tenantId = await connect('short');
    const id = connectionWorkflowId('sage-accounting', tenantId);
    // Wait until the stored token is inside its refresh margin (a quarter of 15 s), so the storm's first callers refresh.
    for (;;) {
      const doc = await readTokenDoc(h.stack.mongo, id);
      const left = doc!.accessTokenExpiresAt.getTime() - Date.now();
      if (left < 3_500) break;
      await new Promise((r) => setTimeout(r, Math.min(500, left - 3_400)));
    }
    const before = counters('sage-accounting');
    const versionBefore = (await readTokenDoc(h.stack.mongo, id))!.version;
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, i * 160));
        return acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { minValidSeconds: 5 });
      }),
    );
    const after = counters('sage-accounting');
    assert.equal(after.refreshes - before.refreshes, 1, 'one refresh for the whole storm');
    assert.equal(after.reusedRefreshTokens - before.reusedRefreshTokens, 0);
    assert.deepEqual(new Set(results.map((r) => r.tokenVersion)), new Set([versionBefore + 1]));
  } finally {
    h.sim.admin.settings({ sageAccounting: { accessTokenTtlSeconds: 300 } });
  }
});

test('a storm across 2 processes (current version rejected): exactly 1 refresh at Sage, 0 reused, one version for all', async () => {
  // Refreshes are counted for this connection's grant only: the simulator's provider-wide count also sees earlier
  // tests' connections (seen in CI under load: 2 refreshes in the window, 0 reused, every caller on v2). A grant
  // appears in refreshesByGrant at its first refresh, so this connection's is the one not there before it connected.
  const grantsBefore = new Set(Object.keys(h.sim.admin.counters().refreshesByGrant));
  const tenantId = await connect('twoproc');
  const before = counters('sage-accounting');
  const startAt = Date.now() + 8_000;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(import.meta.dirname, '..', 'helpers', 'token-callers.ts')],
    {
      env: {
        ...process.env,
        ...workerEnvFor(h.stack.config),
        LOG_LEVEL: 'silent',
        ...h.sim.env,
        CALLERS: '50',
        CALLERS_TENANT: tenantId,
        CALLERS_PROVIDER: 'sage-accounting',
        CALLERS_REJECTED_VERSION: '1',
        CALLERS_START_AT: String(startAt),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
  const mine = await Promise.all(
    Array.from({ length: 50 }, () =>
      acquireAccessToken(deps(), { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: 1 }),
    ),
  );
  assert.equal(await exited, 0, out);
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `the other process reported its results: ${out.slice(-2000)}`);
  const theirs = JSON.parse(line.slice('RESULT '.length)) as { versions: number[]; errors: string[] };
  assert.deepEqual(theirs.errors, []);
  assert.equal(theirs.versions.length, 50);
  const after = counters('sage-accounting');
  const byGrant = h.sim.admin.counters().refreshesByGrant;
  const mineByGrant = Object.entries(byGrant).filter(([g]) => !grantsBefore.has(g));
  assert.deepEqual(
    mineByGrant.map(([, n]) => n),
    [1],
    `one refresh across both processes, for this connection's grant (provider-wide: ${after.refreshes - before.refreshes})`,
  );
  assert.equal(after.reusedRefreshTokens - before.reusedRefreshTokens, 0);
  assert.deepEqual(new Set([...mine.map((r) => r.tokenVersion), ...theirs.versions]), new Set([2]));
});
