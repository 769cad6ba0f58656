/**
 * Full syncs bound by Sage, not by us (issue 14): a partition's Sage Accounting pages are fetched ahead with bounded
 * concurrency (`SAGE_PAGE_CONCURRENCY`), and still written and checkpointed in page order. Simulator over HTTP with a
 * per-page latency fault; concurrency measured AT the simulator (customer pages in flight per partition); real
 * Temporal worker and FerretDB.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSageHttp, type SageHttp } from '../../src/providers/http.js';
import { customerSourceFor } from '../../src/providers/index.js';
import { syncPartition, type Checkpoint } from '../../src/sync/partition-sync.js';
import type { AccessToken, TokenSource } from '../../src/sync/tokens.js';
import { uniqueName } from '../helpers/env.js';
import { withFaults } from '../helpers/faults.js';
import { syncHarness, type SimUserInfo, type SyncHarness } from '../helpers/sync-harness.js';

const LIMIT = 4;
const PAGE = 10;
let h: SyncHarness;
before(async () => {
  h = await syncHarness({
    SAGE_ACCOUNTING_PAGE_SIZE: String(PAGE),
    SAGE200_PAGE_SIZE: String(PAGE),
    SAGE_PAGE_CONCURRENCY: String(LIMIT),
  });
});
after(async () => h?.close());

function withLatency<T>(provider: 'sage-accounting' | 'sage-200', latencyMs: number, fn: () => Promise<T>): Promise<T> {
  h.sim.admin.clearFaults();
  h.sim.admin.resetCounters();
  return withFaults(
    h.sim.admin,
    {
      provider,
      scope: 'api',
      pathIncludes: provider === 'sage-accounting' ? '/contacts' : '/customers',
      kind: 'latency',
      latencyMs,
    },
    fn,
  );
}

/** A token source minting simulator grants; counts the forced refreshes (calls with `rejectedTokenVersion`). */
function mintingTokens(t: SimUserInfo) {
  let version = 0;
  const forced: number[] = [];
  let current: AccessToken | null = null;
  const source: TokenSource = {
    async get(opts) {
      if (opts?.rejectedTokenVersion !== undefined) forced.push(opts.rejectedTokenVersion);
      else if (current) return current;
      const grant = h.sim.admin.mintGrant({ provider: t.provider, userId: t.userId }).token as { access_token: string };
      current = { accessToken: grant.access_token, tokenVersion: ++version };
      return current;
    },
  };
  return { source, forced };
}

/** Calls syncPartition directly (as the activity does), with its own HTTP client so the requests can be listed. */
async function runPartition(
  t: SimUserInfo & { tenantId: string },
  opts: { tokens?: TokenSource; onCheckpoint?: (cp: Checkpoint) => void | Promise<void>; concurrency?: number } = {},
) {
  const urls: URL[] = [];
  const real = createSageHttp({ maxConcurrency: 50, retries: 2, maxRetryAfterMs: 2_000 });
  const http: SageHttp = {
    ...real,
    getJson: (provider, url, o) => (urls.push(new URL(url)), real.getJson(provider, url, o)),
  };
  const res = await syncPartition(
    {
      mongo: h.stack.mongo,
      source: customerSourceFor(t.provider, http, h.stack.config),
      tokens: opts.tokens ?? mintingTokens(t).source,
      pageSize: PAGE,
      pageConcurrency: opts.concurrency ?? LIMIT,
      overlapSeconds: 300,
      ...(opts.onCheckpoint ? { onCheckpoint: opts.onCheckpoint } : {}),
    },
    {
      target: { tenantId: t.tenantId, provider: t.provider, partition: t.partitions[0]! },
      mode: 'full',
      syncWorkflowId: uniqueName('paging'),
    },
  );
  const pageNumbers = urls
    .filter((u) => u.pathname.endsWith('/contacts') && !u.searchParams.has('deleted_since'))
    .map((u) => Number(u.searchParams.get('page') ?? 1));
  return { res, urls, pageNumbers };
}

test('with 150 ms per page, a full sync (Temporal) has >1 page of a partition in flight at Sage, never more than SAGE_PAGE_CONCURRENCY, and equals the truth', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 2, customersPerPartition: 200 });
  const res = await withLatency('sage-accounting', 150, () => h.runSync(t.tenantId, 'sage-accounting', 'full'));
  assert.equal(res.status, 'succeeded');
  const counters = h.sim.admin.counters();
  for (const p of t.partitions) {
    const s = res.partitions[p.id]!;
    assert.equal(s.fetched, 200, 'every page read once (no page fetched ahead was thrown away)');
    assert.equal(s.upserted, 200);
    const high = counters.customerPagesHighWaterByPartition[p.id] ?? 0;
    assert.ok(high > 1, `partition ${p.id}: ${high} page(s) in flight at most — pages were not fetched concurrently`);
    assert.ok(high <= LIMIT, `partition ${p.id}: ${high} pages in flight > SAGE_PAGE_CONCURRENCY ${LIMIT}`);
    assert.deepEqual(await h.diffWithTruth(t.tenantId, t, p.id), []);
  }
  // Both partitions ran at once: the process had more than one partition's limit in flight, all under one client cap.
  assert.ok(
    counters.customerPagesHighWater <= LIMIT * t.partitions.length,
    `${counters.customerPagesHighWater} in flight`,
  );
});

test('checkpoints are written in page order, each one naming the next page, while pages are fetched out of order', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 95 });
  const seen: { pages: number; next: number | null; phase: string }[] = [];
  const { res, pageNumbers } = await withLatency('sage-accounting', 60, () =>
    runPartition(t, {
      onCheckpoint: async (cp) => {
        const next = cp.cursor
          ? Number(new URL(String((cp.cursor as { next: string }).next), 'http://x').searchParams.get('page'))
          : null;
        seen.push({ pages: cp.counts.pages, next, phase: cp.phase });
        await new Promise((r) => setTimeout(r, 5 + (cp.counts.pages % 3) * 10)); // uneven write times
      },
    }),
  );
  assert.equal(res.summary.fetched, 95);
  const customerCps = seen.filter((c) => c.phase !== 'done');
  assert.deepEqual(
    customerCps.map((c) => c.pages),
    Array.from({ length: 10 }, (_, i) => i + 1),
    'one checkpoint per page, pages 1..10 in order',
  );
  for (const c of customerCps.slice(0, -1))
    assert.equal(c.next, c.pages + 1, `checkpoint after page ${c.pages} resumes at page ${c.pages + 1}`);
  assert.equal(customerCps.at(-1)!.next, null, 'the last page ends the listing');
  assert.deepEqual(
    [...pageNumbers].sort((a, b) => a - b),
    Array.from({ length: 10 }, (_, i) => i + 1),
    'each page requested once',
  );
  assert.ok(
    (h.sim.admin.counters().customerPagesHighWaterByPartition[t.partitions[0]!.id] ?? 0) > 1,
    'fetched concurrently',
  );
  assert.deepEqual(await h.diffWithTruth(t.tenantId, t, t.partitions[0]!.id), []);
});

test('Sage quirk: $total moves while paging (customers created/deleted mid-run shift every page=N after them) — pages fetched ahead are dropped and re-fetched, and the result equals the truth', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 150 });
  const p = t.partitions[0]!;
  let mutated = false;
  const { res, pageNumbers } = await withLatency('sage-accounting', 80, () =>
    runPartition(t, {
      onCheckpoint: (cp) => {
        if (cp.counts.pages === 3 && !mutated) {
          mutated = true;
          // While pages 4..7 are in flight: deletes anywhere (earlier ones shift later pages left) and creates (appended).
          h.sim.admin.mutate({
            provider: 'sage-accounting',
            partitionId: p.id,
            userId: t.userId,
            delete: 4,
            create: 7,
          });
        }
      },
    }),
  );
  assert.ok(mutated);
  assert.equal(res.summary.status, 'succeeded');
  const repeated = pageNumbers.filter((n, i) => pageNumbers.indexOf(n) !== i);
  assert.ok(
    repeated.length >= 1,
    `a page fetched ahead under the old $total was fetched again (requests: ${pageNumbers.join(',')})`,
  );
  assert.ok(Math.max(...pageNumbers) >= 16, 'the listing was read to its new end (153 customers = 16 pages of 10)');
  assert.deepEqual(
    await h.diffWithTruth(t.tenantId, t, p.id),
    [],
    'created ones stored, deleted ones flagged, none lost to the shift',
  );
});

test('a run that dies mid-way with pages fetched ahead resumes at the page after its last checkpoint: nothing lost, no page counted twice', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 140 });
  const p = t.partitions[0]!;
  const syncWorkflowId = uniqueName('paging-crash');
  const urls: URL[] = [];
  const real = createSageHttp({ maxConcurrency: 50 });
  const http: SageHttp = {
    ...real,
    getJson: (provider, url, o) => (urls.push(new URL(url)), real.getJson(provider, url, o)),
  };
  let last: Checkpoint | null = null;
  const deps = (onCheckpoint: (cp: Checkpoint) => void) => ({
    mongo: h.stack.mongo,
    source: customerSourceFor('sage-accounting', http, h.stack.config),
    tokens: mintingTokens(t).source,
    pageSize: PAGE,
    pageConcurrency: LIMIT,
    overlapSeconds: 300,
    onCheckpoint,
  });
  const input = {
    target: { tenantId: t.tenantId, provider: 'sage-accounting' as const, partition: p },
    mode: 'full' as const,
    syncWorkflowId,
  };
  await withLatency('sage-accounting', 60, async () => {
    // The "crash": the heartbeat after page 5 throws (as a cancelled attempt does) while pages 6..9 are in flight.
    await assert.rejects(
      syncPartition(
        deps((cp) => {
          last = cp;
          if (cp.counts.pages === 5) throw new Error('worker lost');
        }),
        input,
      ),
      /worker lost/,
    );
    const requestedBefore = urls.length;
    assert.ok(requestedBefore > 5, `pages were fetched ahead of the checkpoint (${requestedBefore} requests)`);
    urls.length = 0;
    const res = await syncPartition(
      deps((cp) => void (last = cp)),
      { ...input, resumeFrom: last, attempt: 2 },
    );
    assert.equal(res.summary.status, 'succeeded');
    assert.equal(res.summary.fetched, 140, 'counts carried over from the checkpoint, no page counted twice');
    assert.equal(res.summary.upserted, 140);
    const resumedPages = urls
      .filter((u) => u.pathname.endsWith('/contacts') && !u.searchParams.has('deleted_since'))
      .map((u) => Number(u.searchParams.get('page')));
    assert.equal(Math.min(...resumedPages), 6, 'the retry starts at the page after the last checkpoint');
    assert.deepEqual(
      [...resumedPages].sort((a, b) => a - b),
      [6, 7, 8, 9, 10, 11, 12, 13, 14],
      'and reads each remaining page once',
    );
  });
  assert.deepEqual(await h.diffWithTruth(t.tenantId, t, p.id), []);
});

test('concurrent pages that hit 401 on the same token share ONE forced refresh, and the run succeeds', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 120 });
  const tokens = mintingTokens(t);
  let expired = false;
  const { res } = await withLatency('sage-accounting', 150, () =>
    runPartition(t, {
      tokens: tokens.source,
      onCheckpoint: (cp) => {
        // Pages 3..6 are waiting at Sage with this token; Sage checks it when it answers them.
        if (cp.counts.pages === 2 && !expired) {
          expired = true;
          h.sim.admin.expireAccessTokens({ provider: 'sage-accounting' });
        }
      },
    }),
  );
  assert.equal(res.summary.status, 'succeeded');
  assert.equal(res.summary.fetched, 120);
  const unauthorized = h.sim.admin.counters().byProvider['sage-accounting'].apiUnauthorized;
  assert.ok(unauthorized >= 2, `${unauthorized} 401(s): several pages in flight were refused together`);
  assert.deepEqual(tokens.forced, [1], 'exactly one forced refresh, of token version 1');
  assert.deepEqual(await h.diffWithTruth(t.tenantId, t, t.partitions[0]!.id), []);
});

test('Sage 200 (keyset paging, no total) stays one page at a time and equals the truth', async () => {
  const t = await h.createTenant('sage-200', { partitions: 1, customersPerPartition: 45 });
  const res = await withLatency('sage-200', 40, () => h.runSync(t.tenantId, 'sage-200', 'full'));
  assert.equal(res.status, 'succeeded');
  assert.equal(h.sim.admin.counters().customerPagesHighWater, 1);
  assert.deepEqual(await h.diffWithTruth(t.tenantId, t, t.partitions[0]!.id), []);
});
