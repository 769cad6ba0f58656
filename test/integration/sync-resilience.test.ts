/**
 * Customer sync under Sage's bad days: 429 storms with and without Retry-After, 5xx, a 401 mid-run, and bad records
 * (quarantined, the run goes on). Simulator over HTTP, real Temporal and FerretDB.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { createSageHttp } from '../../src/providers/http.js';
import { customerSourceFor } from '../../src/providers/index.js';
import type { CustomerSource } from '../../src/providers/types.js';
import { CUSTOMER_HASHES } from '../../src/sync/bulk-writer.js';
import { syncPartition } from '../../src/sync/partition-sync.js';
import type { QuarantineDoc } from '../../src/sync/quarantine.js';
import { syncHarness, type SyncHarness } from '../helpers/sync-harness.js';
import { uniqueName } from '../helpers/env.js';
import { withFaults } from '../helpers/faults.js';

let h: SyncHarness;
before(async () => {
  h = await syncHarness({ SAGE_ACCOUNTING_PAGE_SIZE: '25', SAGE200_PAGE_SIZE: '20' });
});
after(async () => h?.close());

/** The real Sage Accounting source over HTTP and a token source minting a fresh grant of `userId` per call. */
function directSourceAndTokens(userId: string) {
  return {
    source: customerSourceFor('sage-accounting', createSageHttp({ maxConcurrency: 4 }), h.stack.config),
    tokens: {
      get: async () => ({
        accessToken: (h.sim.admin.mintGrant({ provider: 'sage-accounting', userId }).token as { access_token: string })
          .access_token,
        tokenVersion: 1,
      }),
    },
  };
}

async function assertEqualsTruth(tenantId: string, t: Awaited<ReturnType<SyncHarness['createTenant']>>) {
  for (const p of t.partitions) assert.deepEqual(await h.diffWithTruth(tenantId, t, p.id), [], `partition ${p.id}`);
}

test('429 storm WITH Retry-After longer than the in-process retries: the activity retry waits it out; result equals truth', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 2, customersPerPartition: 50 });
  // 6 in a row: got retries 4 times honouring Retry-After, then the activity fails and is retried (nextRetryDelay).
  await withFaults(
    h.sim.admin,
    {
      provider: 'sage-accounting',
      scope: 'api',
      pathIncludes: '/contacts',
      kind: 'status',
      status: 429,
      retryAfterSeconds: 1,
      count: 6,
    },
    async () => {
      const res = await h.runSync(t.tenantId, 'sage-accounting');
      assert.equal(res.status, 'succeeded');
      const rules = h.sim.admin.faults().rules;
      assert.equal(rules[0]?.hits, 6, 'every injected 429 was met');
    },
  );
  await assertEqualsTruth(t.tenantId, t);
});

test('429 storm WITHOUT Retry-After and 503s: exponential backoff; result equals truth', async () => {
  const t = await h.createTenant('sage-200', { partitions: 2, customersPerPartition: 50 });
  await withFaults(
    h.sim.admin,
    [
      {
        provider: 'sage-200',
        scope: 'api',
        pathIncludes: '/customers',
        kind: 'status',
        status: 429,
        retryAfterSeconds: null,
        count: 3,
      },
      {
        provider: 'sage-200',
        scope: 'api',
        pathIncludes: '/customers',
        kind: 'status',
        status: 503,
        count: 2,
        after: 4,
      },
    ],
    async () => {
      const res = await h.runSync(t.tenantId, 'sage-200');
      assert.equal(res.status, 'succeeded');
      assert.deepEqual(
        h.sim.admin.faults().rules.map((r) => r.hits),
        [3, 2],
      );
    },
  );
  await assertEqualsTruth(t.tenantId, t);
});

test('a 401 mid-run (access token expired early) asks for a newer token once and retries the page', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 60 });
  // The harness's token source mints every token it hands out as a grant at the simulator (`/__admin/grants`): one for
  // the run's first page, and one more only when the sync reports its token rejected.
  const grantsMinted = () => h.sim.admin.grants('sage-accounting', t.userId).grants.length;
  const grantsBefore = grantsMinted();
  await withFaults(
    h.sim.admin,
    {
      provider: 'sage-accounting',
      scope: 'api',
      pathIncludes: '/contacts',
      kind: 'status',
      status: 401,
      count: 1,
      after: 1,
    },
    async () => {
      const res = await h.runSync(t.tenantId, 'sage-accounting');
      assert.equal(res.status, 'succeeded');
      assert.equal(h.sim.admin.faults().rules[0]?.hits, 1, 'the 401 was met');
    },
  );
  assert.equal(grantsMinted() - grantsBefore, 2, 'one token for the run and exactly one newer token after the 401');
  await assertEqualsTruth(t.tenantId, t);
});

/** Wraps the real source (over HTTP) and corrupts chosen records as Sage might send them. */
function corrupting(
  source: CustomerSource,
  corrupt: (raw: Record<string, unknown>, i: number) => unknown,
): CustomerSource {
  let n = 0;
  return {
    ...source,
    async fetchPage(ctx, cursor, opts) {
      const page = await source.fetchPage(ctx, cursor, opts);
      return { ...page, records: page.records.map((r) => corrupt(r as Record<string, unknown>, n++)) };
    },
  };
}

test('bad records (missing id, mistyped decimal, huge string) go to quarantine with a reason; the run goes on', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 40 });
  const p = t.partitions[0]!;
  const direct = directSourceAndTokens(t.userId);
  const source = corrupting(direct.source, (raw, i) => {
    if (i === 3) {
      const { id: _drop, ...rest } = raw;
      return rest;
    }
    if (i === 7) return { ...raw, balance: 'twelve pounds' };
    if (i === 11) return { ...raw, name: 'x'.repeat(200_000) };
    return raw;
  });
  const { tokens } = direct;
  const syncWorkflowId = uniqueName('direct');
  const run = (mode: 'full' | 'incremental') =>
    syncPartition(
      { mongo: h.stack.mongo, source, tokens, pageSize: 25, overlapSeconds: 300 },
      {
        target: { tenantId: t.tenantId, provider: 'sage-accounting', partition: p },
        mode,
        syncWorkflowId: `${syncWorkflowId}-${mode}`,
      },
    );
  const first = await run('full');
  assert.equal(first.summary.status, 'succeeded');
  assert.equal(first.summary.fetched, 40);
  assert.equal(first.summary.quarantined, 3);
  assert.equal(first.summary.upserted, 37);
  const q = await h.stack.mongo
    .collection<QuarantineDoc>(COLLECTIONS.quarantine)
    .find({ tenantId: t.tenantId })
    .toArray();
  assert.equal(q.length, 3);
  const reasons = q.map((d) => d.reason).sort();
  assert.ok(
    reasons.some((r) => /^id:/.test(r)),
    reasons.join(' | '),
  );
  assert.ok(reasons.some((r) => /balance: not a decimal number/.test(r)));
  assert.ok(reasons.some((r) => /name: longer than/.test(r)));
  const huge = q.find((d) => /name: longer/.test(d.reason))!;
  assert.equal(huge.rawTruncated, true, 'a huge payload is kept truncated, not dropped');
  for (const d of q) assert.ok(d._id.startsWith(`sage-accounting:${t.tenantId}:${p.id}:`));
  // The same bad records read again are the same quarantine entries, and a customer whose latest version is bad is
  // not reconciled away as deleted.
  const again = await run('full');
  assert.equal(again.summary.deleted, 0);
  assert.equal(await h.stack.mongo.collection(COLLECTIONS.quarantine).countDocuments({ tenantId: t.tenantId }), 3);
});

test('Sage Accounting quirk: offset paging skips a record when an earlier one is deleted mid-run; full reconciliation confirms before flagging', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 40 });
  const p = t.partitions[0]!;
  const { source: real, tokens } = directSourceAndTokens(t.userId);
  const run = (source: CustomerSource, id: string) =>
    syncPartition(
      { mongo: h.stack.mongo, source, tokens, pageSize: 25, overlapSeconds: 300 },
      {
        target: { tenantId: t.tenantId, provider: 'sage-accounting', partition: p },
        mode: 'full',
        syncWorkflowId: uniqueName(id),
      },
    );
  assert.equal((await run(real, 'first')).summary.upserted, 40);
  // Second full run: the listing "loses" one live customer (as a mid-run deletion would shift it out of the pages),
  // and one customer really is deleted in Sage.
  const live = h.sim.admin.truth('sage-accounting', p.id, t.userId).customers;
  const skipped = live[30]!.id;
  const m = h.sim.admin.mutate({
    provider: 'sage-accounting',
    partitionId: p.id,
    userId: t.userId,
    delete: [live[5]!.id],
  });
  const shifting = corrupting(real, (raw) =>
    (raw as { id?: string }).id === skipped
      ? { id: skipped, contact_types: [{ id: 'VENDOR' }], updated_at: '2024-01-01T00:00:00Z' }
      : raw,
  );
  const res = await run(shifting, 'second');
  assert.equal(res.summary.deleted, 1, 'only the customer Sage answers 404 for is flagged');
  const docs = await h.customers(t.tenantId, 'sage-accounting', p.id);
  assert.equal(
    docs.find((d) => d.externalId === skipped)?.deleted,
    false,
    'the skipped customer was confirmed by GET and kept',
  );
  assert.equal(docs.find((d) => d.externalId === m.deleted[0])?.deleted, true);
});

test('a definitive Sage error (400) fails the partition at once: sync_runs says failed with the error, the run fails as SyncFailed', async () => {
  const t = await h.createTenant('sage-200', { partitions: 1, customersPerPartition: 30 });
  await withFaults(
    h.sim.admin,
    { provider: 'sage-200', scope: 'api', pathIncludes: '/customers', kind: 'status', status: 400, count: 1 },
    () =>
      assert.rejects(
        h.runSync(t.tenantId, 'sage-200'),
        (err: Error & { cause?: { type?: string } }) => err.cause?.type === 'SyncFailed',
      ),
  );
  const run = await h.stack.mongo.collection(COLLECTIONS.syncRuns).findOne({ tenantId: t.tenantId });
  assert.equal(run?.status, 'failed');
  assert.match(String(run?.error), /400/);
  assert.ok(run?.finishedAt instanceof Date);
  // The next run starts over (still a first, full sync) and succeeds.
  const res = await h.runSync(t.tenantId, 'sage-200');
  assert.equal(res.partitions[t.partitions[0]!.id]?.mode, 'full');
  await assertEqualsTruth(t.tenantId, t);
});

/**
 * A Mongo handle whose `customer_hashes` bulk writes throw once `crashOnHashWrite.armed` is set: the process "dies"
 * after a page's customers were written and before their hash entries were (the SIGKILL window between two writes).
 */
function crashingHashWrites(mongo: SyncHarness['stack']['mongo']) {
  const state = { armed: false, crashes: 0 };
  const db = new Proxy(mongo.db, {
    get(target, prop, receiver) {
      if (prop !== 'collection') return Reflect.get(target, prop, receiver);
      return (name: string, ...rest: unknown[]) => {
        const coll = (target.collection as (n: string, ...r: unknown[]) => ReturnType<typeof target.collection>)(
          name,
          ...rest,
        );
        if (name !== CUSTOMER_HASHES) return coll;
        return new Proxy(coll, {
          get(c, p, r) {
            if (p === 'bulkWrite' && state.armed) {
              return async () => {
                state.armed = false;
                state.crashes++;
                throw new Error('simulated crash between the customer write and the hash write');
              };
            }
            const v = Reflect.get(c, p, r);
            return typeof v === 'function' ? v.bind(c) : v;
          },
        });
      };
    },
  });
  return { mongo: { ...mongo, db }, state };
}

test("crash between a page's customer write and its hash write, customer then deleted at Sage: the resumed full run still flags it deleted", async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 30 });
  const p = t.partitions[0]!;
  const { source, tokens } = directSourceAndTokens(t.userId);
  const crashing = crashingHashWrites(h.stack.mongo);
  const run = (mongo: typeof h.stack.mongo, syncWorkflowId: string, mode: 'full' | 'incremental' = 'full') =>
    syncPartition(
      { mongo, source, tokens, pageSize: 10, overlapSeconds: 300 },
      { target: { tenantId: t.tenantId, provider: 'sage-accounting', partition: p }, mode, syncWorkflowId },
    );
  assert.equal((await run(h.stack.mongo, uniqueName('first'))).summary.upserted, 30);

  // A new customer appears at Sage; the next full run writes it (the only write of the run), then "crashes".
  const created = h.sim.admin.mutate({ provider: 'sage-accounting', partitionId: p.id, userId: t.userId, create: 1 })
    .created[0]!;
  const second = uniqueName('second');
  crashing.state.armed = true;
  await assert.rejects(run(crashing.mongo, second), /simulated crash/);
  assert.equal(crashing.state.crashes, 1, 'the crash happened at the hash write');
  const stored = await h.customers(t.tenantId, 'sage-accounting', p.id);
  assert.equal(
    stored.find((d) => d.externalId === created)?.deleted,
    false,
    'the customer was written before the crash',
  );

  // Deleted at Sage before the retry re-reads that page: the retry never sees it again.
  h.sim.admin.mutate({ provider: 'sage-accounting', partitionId: p.id, userId: t.userId, delete: [created] });
  const resumed = await run(h.stack.mongo, second);
  assert.equal(resumed.summary.status, 'succeeded');
  assert.equal(resumed.summary.deleted, 1, 'full reconciliation flagged the customer written just before the crash');
  // Later runs (the deletion feed now starts after the deletion) keep it that way, and the rest equals Sage's truth.
  await run(h.stack.mongo, uniqueName('third'), 'incremental');
  await run(h.stack.mongo, uniqueName('fourth'));
  assert.deepEqual(await h.diffWithTruth(t.tenantId, t, p.id), []);
  const docs = await h.customers(t.tenantId, 'sage-accounting', p.id);
  assert.equal(docs.find((d) => d.externalId === created)?.deleted, true);
});

test('an incremental run retried after a crash before its deletion-feed read keeps its own feed start, not one another run saved meanwhile', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 20 });
  const p = t.partitions[0]!;
  const { source: real, tokens } = directSourceAndTokens(t.userId);
  // overlap 0: each run's saved feed position is its own start, so "another run moved it past the deletion" is reachable.
  const run = (source: CustomerSource, syncWorkflowId: string, mode: 'full' | 'incremental') =>
    syncPartition(
      { mongo: h.stack.mongo, source, tokens, pageSize: 10, overlapSeconds: 0 },
      { target: { tenantId: t.tenantId, provider: 'sage-accounting', partition: p }, mode, syncWorkflowId },
    );
  await run(real, uniqueName('first'), 'full');
  // Sage times have whole seconds and `deleted_since` is exclusive: keep each step in a later second than the last.
  await sleep(1_100);

  // A full run B has read the stored hashes and waits at its first page (as a slow concurrent run would).
  let reachedGate!: () => void;
  const atGate = new Promise<void>((r) => (reachedGate = r));
  let openGate!: () => void;
  const gate = new Promise<void>((r) => (openGate = r));
  let gated = true;
  const slowStart: CustomerSource = {
    ...real,
    async fetchPage(ctx, cursor, opts) {
      if (gated) {
        gated = false;
        reachedGate();
        await gate;
      }
      return real.fetchPage(ctx, cursor, opts);
    },
  };
  const b = run(slowStart, uniqueName('b-full'), 'full');
  await atGate;

  // Incremental run A writes a new customer, then its worker dies just before it reads the deletion feed.
  const created = h.sim.admin.mutate({ provider: 'sage-accounting', partitionId: p.id, userId: t.userId, create: 1 })
    .created[0]!;
  const dyingBeforeFeed: CustomerSource = {
    ...real,
    deletions: {
      ...real.deletions!,
      fetchPage: async () => {
        throw new Error('simulated crash before the deletion-feed read');
      },
    },
  };
  const a = uniqueName('a-incr');
  await assert.rejects(run(dyingBeforeFeed, a, 'incremental'), /simulated crash/);
  await sleep(1_100);
  // Sage deletes it; B (which never knew it) then lists, reconciles and saves a feed position after the deletion.
  h.sim.admin.mutate({ provider: 'sage-accounting', partitionId: p.id, userId: t.userId, delete: [created] });
  await sleep(1_500);
  openGate();
  assert.equal((await b).summary.status, 'succeeded');
  const docsAfterB = await h.customers(t.tenantId, 'sage-accounting', p.id);
  assert.equal(
    docsAfterB.find((d) => d.externalId === created)?.deleted,
    false,
    'B did not know the customer, so it did not flag it',
  );

  // A's retry must read the feed from where A's first attempt started.
  const resumed = await run(real, a, 'incremental');
  assert.equal(resumed.summary.status, 'succeeded');
  const docs = await h.customers(t.tenantId, 'sage-accounting', p.id);
  assert.equal(
    docs.find((d) => d.externalId === created)?.deleted,
    true,
    'the deletion reached MongoDB through the retried run',
  );
  assert.deepEqual(await h.diffWithTruth(t.tenantId, t, p.id), []);
});
