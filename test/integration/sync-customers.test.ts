/**
 * Customer sync end to end: simulator over HTTP → syncCustomers (real Temporal worker) → FerretDB, compared with the
 * simulator's ground truth. Small data: 3 partitions × ≤ 120 customers per provider, small pages to get many pages.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { syncRunId } from '../../src/sync/documents.js';
import { syncHarness, type SimUserInfo, type SyncHarness } from '../helpers/sync-harness.js';

let h: SyncHarness;
before(async () => {
  h = await syncHarness({ SAGE_ACCOUNTING_PAGE_SIZE: '25', SAGE200_PAGE_SIZE: '20' });
});
after(async () => h?.close());

async function assertEqualsTruth(tenantId: string, t: SimUserInfo) {
  for (const p of t.partitions) {
    const diffs = await h.diffWithTruth(tenantId, t, p.id);
    assert.deepEqual(diffs, [], `partition ${p.id} differs from Sage`);
  }
}

for (const provider of ['sage-accounting', 'sage-200'] as const) {
  describe(`${provider}`, () => {
    let tenant: SimUserInfo & { tenantId: string };

    test('first sync is full and equals the truth for every partition (no vendors, no duplicates)', async () => {
      tenant = await h.createTenant(provider, { partitions: 3, customersPerPartition: 80 });
      const res = await h.runSync(tenant.tenantId, provider);
      assert.equal(res.status, 'succeeded');
      for (const p of tenant.partitions) {
        const s = res.partitions[p.id];
        assert.equal(s?.mode, 'full');
        assert.equal(s?.status, 'succeeded');
        assert.equal(s?.fetched, 80, 'every customer fetched once (vendors filtered by Sage, pages never re-read)');
        assert.equal(s?.upserted, 80);
      }
      await assertEqualsTruth(tenant.tenantId, tenant);
      const runs = await h.stack.mongo
        .collection(COLLECTIONS.syncRuns)
        .find({ syncWorkflowId: res.workflowId })
        .toArray();
      assert.equal(runs.length, 3);
      for (const r of runs) {
        assert.equal(r._id, syncRunId(res.workflowId, r.partitionId));
        assert.equal(r.status, 'succeeded');
        assert.equal(r.mode, 'full');
        assert.ok(r.pages >= 4, `several pages (${r.pages})`);
        for (const f of ['startedAt', 'finishedAt', 'watermarkTo']) assert.ok(r[f] instanceof Date, f);
        for (const f of ['fetched', 'upserted', 'modified', 'deleted', 'quarantined'])
          assert.equal(typeof r[f], 'number', f);
      }
    });

    test('a second identical run modifies 0 documents (content hash) and costs ≤ 2 Sage calls per partition', async () => {
      const before = h.requests.length;
      const res = await h.runSync(tenant.tenantId, provider);
      // Sage Accounting: one contacts page + one deleted_since page; Sage 200: one customers page.
      const calls = h.requests.length - before;
      assert.ok(
        calls <= (provider === 'sage-accounting' ? 2 : 1) * tenant.partitions.length,
        `${calls} Sage calls for ${tenant.partitions.length} partitions`,
      );
      for (const p of tenant.partitions) {
        const s = res.partitions[p.id]!;
        assert.equal(s.mode, 'incremental');
        assert.equal(s.upserted + s.modified + s.deleted, 0, JSON.stringify(s));
      }
      const full = await h.runSync(tenant.tenantId, provider, 'full');
      for (const p of tenant.partitions) {
        const s = full.partitions[p.id]!;
        assert.equal(s.mode, 'full');
        assert.equal(s.fetched, 80);
        assert.equal(s.upserted + s.modified + s.deleted, 0, JSON.stringify(s));
      }
    });

    test('updates, creates and deletes reach MongoDB; ties at one updated_at span page boundaries', async () => {
      const p0 = tenant.partitions[0]!;
      // 30 updates share one timestamp: more than a page (20/25), so the tie straddles page boundaries.
      const m = h.sim.admin.mutate({
        provider,
        partitionId: p0.id,
        userId: tenant.userId,
        update: 30,
        delete: 4,
        create: 5,
      });
      const res = await h.runSync(tenant.tenantId, provider);
      const s = res.partitions[p0.id]!;
      assert.equal(s.mode, 'incremental');
      assert.equal(s.upserted, 5, 'created customers inserted');
      assert.equal(s.modified, 30, 'every tied update seen exactly once as a change');
      if (provider === 'sage-accounting') {
        assert.equal(s.deleted, 4, 'deleted_since feed flags deletions in incremental mode');
        await assertEqualsTruth(tenant.tenantId, tenant);
      } else {
        // Sage 200 has no deletion feed: deletions wait for the full reconciliation.
        assert.equal(s.deleted, 0);
        const full = await h.runSync(tenant.tenantId, provider, 'full');
        assert.equal(full.partitions[p0.id]!.deleted, 4);
        await assertEqualsTruth(tenant.tenantId, tenant);
      }
      const docs = await h.customers(tenant.tenantId, provider, p0.id);
      for (const id of m.deleted) {
        const d = docs.find((x) => x.externalId === id)!;
        assert.equal(d.deleted, true);
        assert.ok(d.deletedAt instanceof Date);
      }
    });
  });
}

test('Sage Accounting quirk: a page past the end repeats the last page, so paging follows $next and never builds page N+1', async () => {
  const t = await h.createTenant('sage-accounting', { partitions: 1, customersPerPartition: 60 });
  const before = h.requests.length;
  await h.runSync(t.tenantId, 'sage-accounting');
  const lists = h.requests
    .slice(before)
    .filter((u) => u.pathname.endsWith('/contacts') && !u.searchParams.has('deleted_since'));
  const total = h.sim.admin.truth('sage-accounting', t.partitions[0]!.id, t.userId).customers.length;
  const pages = lists.map((u) => Number(u.searchParams.get('page') ?? '1'));
  assert.deepEqual(
    pages,
    Array.from({ length: Math.ceil(total / 25) }, (_, i) => i + 1),
    'each page exactly once, none past the end',
  );
  for (const u of lists) {
    assert.equal(u.searchParams.get('contact_type_id'), 'CUSTOMER');
    assert.ok(
      u.searchParams.get('attributes')?.includes('updated_at'),
      'named attributes on every page (without them items carry only ids)',
    );
  }
});

test('Sage 200 quirk: $skip is never sent without $orderby; every page is ordered by (date_time_updated, id)', () => {
  const s200 = h.requests.filter((u) => u.pathname.endsWith('/customers'));
  assert.ok(s200.length > 10);
  assert.ok(
    s200.some((u) => u.searchParams.has('$skip')),
    'ties made us use $skip',
  );
  for (const u of s200) {
    if (u.searchParams.has('$skip')) assert.equal(u.searchParams.get('$orderby'), 'date_time_updated asc, id asc');
    assert.ok(u.searchParams.has('$orderby'));
  }
});
