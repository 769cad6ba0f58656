/**
 * The ordered read-ahead of a partition's pages (src/sync/read-ahead.ts) and the Sage Accounting `page=N` plan, without
 * a server: pages are fetched up to the limit at once but handed out (so written and checkpointed) in page order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { plannedPagesAfter } from '../../src/providers/sage-accounting/customers.js';
import { ReadAhead } from '../../src/sync/read-ahead.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tracker() {
  let inFlight = 0;
  let max = 0;
  const started: number[] = [];
  return {
    started,
    get max() {
      return max;
    },
    async fetch(n: number, delayMs: number) {
      started.push(n);
      inFlight++;
      max = Math.max(max, inFlight);
      try {
        await sleep(delayMs);
        return `page-${n}`;
      } finally {
        inFlight--;
      }
    },
  };
}

test('pages finishing out of order are handed out in order, never more than the limit in flight', async () => {
  const t = tracker();
  const plan = Array.from({ length: 12 }, (_, i) => i + 2);
  // Later pages answer sooner: page 2 is the slowest of its window.
  const ra = new ReadAhead(plan, (n) => t.fetch(n, 5 + ((20 - n) % 7) * 4), 3);
  const order: string[] = [];
  for (;;) {
    const taken = await ra.take();
    if (!taken) break;
    order.push(taken.page);
    await sleep(3); // the write of this page
  }
  assert.deepEqual(
    order,
    plan.map((n) => `page-${n}`),
  );
  assert.equal(t.max, 3, 'the window was full (3 at once) and never more');
  assert.deepEqual(t.started, plan, 'fetches start in page order');
});

test('a failed page surfaces in its turn, after every earlier page; nothing after it is handed out', async () => {
  const ra = new ReadAhead(
    [1, 2, 3, 4, 5],
    async (n) => {
      await sleep(n === 3 ? 1 : 10); // page 3 fails first, before 1 and 2 answer
      if (n === 3) throw new Error('page 3: HTTP 500');
      return n;
    },
    4,
  );
  assert.equal((await ra.take())?.page, 1);
  assert.equal((await ra.take())?.page, 2);
  await assert.rejects(ra.take(), /page 3/);
  assert.equal(await ra.take(), null, 'abandoned after the failure');
});

test('abandon() drops answers in flight and starts nothing more', async () => {
  const t = tracker();
  const ra = new ReadAhead([1, 2, 3, 4, 5, 6], (n) => t.fetch(n, 5), 2);
  assert.equal((await ra.take())?.page, 'page-1');
  ra.abandon();
  assert.equal(await ra.take(), null);
  await sleep(20);
  assert.deepEqual(t.started, [1, 2, 3], 'only the window that was already started');
});

test('limit 1 is one page at a time', async () => {
  const t = tracker();
  const ra = new ReadAhead([1, 2, 3], (n) => t.fetch(n, 2), 1);
  while (await ra.take());
  assert.equal(t.max, 1);
  assert.throws(() => new ReadAhead([1], async () => 1, 0), /positive integer/);
});

test('Sage Accounting plan: page=N cursors from $page/$total/$itemsPerPage up to the last page, none on the last page', () => {
  const params = { contact_type_id: 'CUSTOMER', items_per_page: '25', attributes: 'name,reference' };
  const nextCursor = {
    next: '/contacts?page=2&contact_type_id=CUSTOMER&items_per_page=25&attributes=name,reference',
    params,
    pages: 1,
    maxPages: 6,
  };
  const plan = plannedPagesAfter({ records: [], nextCursor, total: 101, pageNumber: 1, perPage: 25 });
  assert.deepEqual(
    plan.map((p) => p.pageNumber),
    [2, 3, 4, 5],
    '101 items of 25 = 5 pages',
  );
  const first = plan[0]!.cursor as { next: string; pages: number; maxPages: number; params: Record<string, string> };
  const u = new URL(first.next, 'http://x');
  assert.equal(u.pathname, '/contacts');
  assert.equal(u.searchParams.get('page'), '2');
  assert.equal(u.searchParams.get('items_per_page'), '25');
  assert.equal(u.searchParams.get('contact_type_id'), 'CUSTOMER');
  assert.equal(u.searchParams.get('attributes'), 'name,reference');
  assert.equal(first.pages, 1, 'the same page count as the $next cursor of page 1');
  assert.equal((plan[3]!.cursor as { pages: number }).pages, 4);
  assert.equal(first.maxPages, 6, 'the runaway guard travels along');
  assert.deepEqual(
    plannedPagesAfter({ records: [], nextCursor: null, total: 101, pageNumber: 5, perPage: 25 }),
    [],
    'last page',
  );
  assert.deepEqual(
    plannedPagesAfter({ records: [], nextCursor, pageNumber: 1, perPage: 25 }),
    [],
    'no $total: no plan',
  );
  assert.deepEqual(plannedPagesAfter({ records: [], nextCursor, total: 101, perPage: 25 }), [], 'no $page: no plan');
});
