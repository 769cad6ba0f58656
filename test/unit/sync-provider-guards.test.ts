import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SageHttp } from '../../src/providers/http.js';
import { createSageAccountingSource } from '../../src/providers/sage-accounting/customers.js';
import type { RequestContext } from '../../src/providers/types.js';

/** A fake transport: answers each GET with the next canned response and records what was asked. */
function fakeHttp(answers: { body: unknown; headers?: Record<string, string> }[]) {
  const asked: { url: string; headers: Record<string, string> }[] = [];
  const http = {
    async getJson(_provider: string, url: string, options: { headers?: Record<string, string> } = {}) {
      asked.push({ url, headers: options.headers ?? {} });
      const a = answers.shift();
      if (!a) throw new Error('no more answers');
      return { body: a.body, headers: a.headers ?? {} };
    },
  } as unknown as SageHttp;
  return { http, asked };
}

const ctx: RequestContext = {
  tenantId: 't',
  provider: 'sage-accounting',
  partition: { id: 'biz-2', name: 'B2' },
  accessToken: 'tok',
};
const config = { SAGE_ACCOUNTING_API_URL: 'http://sim/sage-accounting/v3.1' };

test('Sage Accounting quirk: without X-Business Sage answers for the lead business; we always send it and refuse an answer for another business', async () => {
  const { http, asked } = fakeHttp([{ body: { $items: [], $next: null }, headers: { 'x-business': 'biz-1' } }]);
  const source = createSageAccountingSource(http, config);
  await assert.rejects(
    source.fetchPage(ctx, source.startCursor('full', null), { pageSize: 200 }),
    (err: Error & { type?: string }) => err.type === 'PartitionMismatch',
  );
  assert.equal(asked[0]?.headers['X-Business'], 'biz-2');
  assert.equal(asked[0]?.headers.authorization, 'Bearer tok');
});

test('Sage Accounting: paging follows $next verbatim (with our parameters kept) and stops only when $next is null', async () => {
  const { http, asked } = fakeHttp([
    {
      body: { $total: 3, $itemsPerPage: 2, $next: '/contacts?page=2&items_per_page=2', $items: [{}, {}] },
      headers: { 'x-business': 'biz-2' },
    },
    // The page past the end would repeat page 2; we never ask for it because $next is null here.
    { body: { $total: 3, $items_per_page: 2, $next: null, $items: [{}] }, headers: { 'x-business': 'biz-2' } },
  ]);
  const source = createSageAccountingSource(http, config);
  const p1 = await source.fetchPage(ctx, source.startCursor('incremental', new Date('2024-03-01T10:00:00Z')), {
    pageSize: 2,
  });
  assert.ok(p1.nextCursor);
  const p2 = await source.fetchPage(ctx, p1.nextCursor, { pageSize: 2 });
  assert.equal(p2.nextCursor, null);
  const first = new URL(asked[0]!.url);
  assert.equal(first.searchParams.get('updated_or_created_since'), '2024-03-01T10:00:00+00:00');
  assert.equal(first.searchParams.get('items_per_page'), '2');
  const second = new URL(asked[1]!.url);
  assert.equal(second.pathname, '/sage-accounting/v3.1/contacts');
  assert.equal(second.searchParams.get('page'), '2');
  assert.equal(
    second.searchParams.get('attributes'),
    first.searchParams.get('attributes'),
    'a $next that drops our parameters gets them back',
  );
  assert.equal(second.searchParams.get('updated_or_created_since'), '2024-03-01T10:00:00+00:00');
});

test('Sage Accounting: a server that hands out $next forever is stopped (guard from $total)', async () => {
  const page = {
    body: { $total: 2, $itemsPerPage: 2, $next: '/contacts?page=2', $items: [{}, {}] },
    headers: { 'x-business': 'biz-2' },
  };
  const { http } = fakeHttp(Array.from({ length: 20 }, () => structuredClone(page)));
  const source = createSageAccountingSource(http, config);
  let cursor = source.startCursor('full', null);
  await assert.rejects(async () => {
    for (let i = 0; i < 20; i++) cursor = (await source.fetchPage(ctx, cursor, { pageSize: 2 })).nextCursor!;
  }, /kept returning \$next/);
});
