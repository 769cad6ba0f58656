/**
 * Fault suite: fuzzed Sage payloads (FAULTS=full: 10,000; `npm test`: 500) through the real mapping → write →
 * quarantine path (`syncPartition` with each provider's real `mapCustomer`), and a share of them through the real HTTP
 * path (got client, Sage Accounting envelope and `$next` paging, X-Business echo) from a small server that serves them,
 * including a page whose JSON body is cut short.
 *
 * Asserted: no crash; every record is either stored (mapper accepted it) or quarantined with a non-empty reason (or
 * skipped as "not a customer", which is counted); nothing stored has a non-number balance or an invalid date.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import type { Provider } from '../../src/messages.js';
import { createSageHttp } from '../../src/providers/http.js';
import { customerSourceFor } from '../../src/providers/index.js';
import type { CustomerSource, Cursor } from '../../src/providers/types.js';
import { customerId, quarantineId, type PartitionKey } from '../../src/sync/documents.js';
import { syncPartition, type Checkpoint } from '../../src/sync/partition-sync.js';
import { testStack, type TestStack } from '../helpers/env.js';
import { size } from '../helpers/faults.js';
import { fuzzCases, truncatedJson, type FuzzCase } from '../helpers/fuzz.js';

const COUNT = size(500, 10_000);
const HTTP_COUNT = size(120, 2_000);
const PAGE = 100;

/** A source serving fixed records page by page, with the provider's real mapper. */
function listSource(real: CustomerSource, records: unknown[]): CustomerSource {
  return {
    provider: real.provider,
    partitionHeaders: real.partitionHeaders,
    startCursor: () => ({ offset: 0 }),
    async fetchPage(_ctx, cursor: Cursor) {
      const offset = Number(cursor.offset);
      const next = offset + PAGE;
      return { records: records.slice(offset, next), nextCursor: next < records.length ? { offset: next } : null };
    },
    mapCustomer: real.mapCustomer,
  };
}

const staticTokens = { get: async () => ({ accessToken: 'fuzz-token', tokenVersion: 1 }) };

interface Expectation {
  stored: Set<string>;
  /** Rejected records. */
  quarantined: number;
  /** Distinct quarantine ids (contract §4: customer id + payload hash, so byte-identical junk items share one). */
  quarantineIds: Set<string>;
  skipped: number;
}

function expectations(source: CustomerSource, key: PartitionKey, cases: FuzzCase[]): Expectation {
  const e: Expectation = { stored: new Set(), quarantined: 0, quarantineIds: new Set(), skipped: 0 };
  for (const c of cases) {
    const r = source.mapCustomer(c.raw);
    if (r.ok) e.stored.add(r.customer.externalId);
    else if (r.skip) e.skipped++;
    else {
      e.quarantined++;
      e.quarantineIds.add(quarantineId(key, r.externalId, c.raw));
    }
  }
  return e;
}

describe(`fault suite: ${COUNT} fuzzed Sage payloads`, () => {
  let stack: TestStack;
  before(async () => {
    stack = await testStack();
  });
  after(async () => {
    await stack.close();
  });

  for (const provider of ['sage-accounting', 'sage-200'] as const) {
    test(`${provider}: every fuzzed record is stored or quarantined with a reason (mapping path)`, async () => {
      const cases = fuzzCases(COUNT).filter((c) => c.provider === provider);
      const real = customerSourceFor(provider, createSageHttp({ maxConcurrency: 4 }), stack.config);
      const key = {
        tenantId: 'fuzz',
        provider: provider as Provider,
        partitionId: provider === 'sage-accounting' ? 'fuzzbiz' : '777',
      };
      const want = expectations(real, key, cases);
      const result = await syncPartition(
        {
          mongo: stack.mongo,
          source: listSource(
            real,
            cases.map((c) => c.raw),
          ),
          tokens: staticTokens,
          pageSize: PAGE,
          overlapSeconds: 0,
        },
        {
          target: { tenantId: key.tenantId, provider, partition: { id: key.partitionId, name: 'fuzz' } },
          mode: 'full',
          syncWorkflowId: `fuzz-${provider}`,
        },
      );
      const customers = await stack.mongo
        .collection(COLLECTIONS.customers)
        .find({ tenantId: 'fuzz', provider })
        .toArray();
      const quarantine = await stack.mongo
        .collection(COLLECTIONS.quarantine)
        .find({ tenantId: 'fuzz', provider })
        .toArray();
      const storedIds = new Set(customers.map((d) => String(d.externalId)));
      const mutatedAccepted = cases.filter((c) => c.mutations.length > 0).length - want.quarantined - want.skipped;
      console.log(
        `[faults] ${provider}: ${cases.length} fuzzed, ${want.stored.size} accepted (${mutatedAccepted} of them mutated but still valid), ${want.quarantined} quarantined, ${want.skipped} skipped as non-customers; stored ${customers.length}, quarantine docs ${quarantine.length}`,
      );
      assert.equal(result.summary.status, 'succeeded');
      assert.equal(result.summary.fetched, cases.length);
      assert.equal(result.summary.quarantined, want.quarantined, 'run summary counts every rejected record');
      assert.deepEqual(
        [...want.stored].filter((id) => !storedIds.has(id)),
        [],
        'every accepted record is stored',
      );
      assert.equal(customers.length, want.stored.size, 'nothing stored that the mapper rejected');
      assert.deepEqual(
        new Set(quarantine.map((q) => String(q._id))),
        want.quarantineIds,
        'every rejected record has its quarantine document',
      );
      for (const q of quarantine) {
        assert.ok(typeof q.reason === 'string' && q.reason.length > 0, `quarantine ${q._id} has a reason`);
        assert.ok(q.raw !== undefined || typeof q.rawJson === 'string', `quarantine ${q._id} keeps the payload`);
      }
      for (const d of customers) {
        assert.ok(d.balance === null || Number.isFinite(d.balance), `balance of ${d._id} is a number or null`);
        assert.ok(
          d.sourceUpdatedAt instanceof Date && !Number.isNaN(d.sourceUpdatedAt.getTime()),
          `sourceUpdatedAt of ${d._id} is a date`,
        );
        assert.equal(d._id, customerId(key, String(d.externalId)));
      }
      // Oracle checks that do not trust the mapper: a record without an id, or not an object, is never stored.
      for (const c of cases) {
        const isObject = c.raw !== null && typeof c.raw === 'object' && !Array.isArray(c.raw);
        if (!isObject || !('id' in (c.raw as object)))
          assert.ok(
            !storedIds.has(String((c.raw as { id?: unknown } | null)?.id)),
            `case ${c.seq} (${c.mutations}) not stored`,
          );
      }
    });
  }

  // FerretDB quirk (PostgreSQL jsonb): a string containing U+0000 cannot be stored ("unsupported Unicode escape
  // sequence", SQLSTATE 22P05), although it is valid JSON and MongoDB stores it. A Sage payload carrying one must be
  // stored (with the character replaced) or quarantined with a reason, never crash the page.
  test('a customer whose name contains U+0000 is stored or quarantined, not a crashed page', async () => {
    const real = customerSourceFor('sage-accounting', createSageHttp({ maxConcurrency: 4 }), stack.config);
    const good = fuzzCases(40).filter((c) => c.provider === 'sage-accounting' && c.mutations.length === 0);
    assert.ok(good.length > 0);
    const raw = {
      ...(good[0]!.raw as Record<string, unknown>),
      id: 'nul00000000000000000000000000001',
      name: 'Acme\u0000Ltd',
    };
    const key = { tenantId: 'fuzznul', provider: 'sage-accounting' as const, partitionId: 'nulbiz' };
    const result = await syncPartition(
      { mongo: stack.mongo, source: listSource(real, [raw]), tokens: staticTokens, pageSize: PAGE, overlapSeconds: 0 },
      {
        target: { tenantId: key.tenantId, provider: key.provider, partition: { id: key.partitionId, name: 'nul' } },
        mode: 'full',
        syncWorkflowId: 'fuzz-nul',
      },
    );
    const stored = await stack.mongo.collection(COLLECTIONS.customers).countDocuments({ tenantId: key.tenantId });
    const quarantined = await stack.mongo.collection(COLLECTIONS.quarantine).countDocuments({ tenantId: key.tenantId });
    assert.equal(result.summary.status, 'succeeded');
    assert.equal(stored + quarantined, 1);
  });

  test(`HTTP path: ${HTTP_COUNT} fuzzed contacts served as Sage Accounting pages, one page body cut short`, async () => {
    const cases = fuzzCases(HTTP_COUNT * 2, 99).filter((c) => c.provider === 'sage-accounting');
    // What the client will see is the JSON round trip (NaN → null, undefined dropped).
    const items: unknown[] = cases.map((c) => JSON.parse(JSON.stringify(c.raw) ?? 'null'));
    const business = 'fuzzhttp';
    let truncatedServed = 0;
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (!url.pathname.endsWith('/contacts')) return void res.writeHead(404).end();
      const page = Number(url.searchParams.get('page') ?? 1);
      const per = Number(url.searchParams.get('items_per_page') ?? 20);
      const slice = items.slice((page - 1) * per, page * per);
      const params = new URLSearchParams(url.searchParams);
      params.set('page', String(page + 1));
      const body = {
        $total: items.length,
        $page: page,
        $next: page * per < items.length ? `/contacts?${params}` : null,
        $back: null,
        $itemsPerPage: per,
        $items: slice,
      };
      res.writeHead(200, { 'content-type': 'application/json', 'x-business': req.headers['x-business'] ?? '' });
      // Page 2 is cut short the first time: a broken body must fail the page (retryably), never half-write it.
      if (page === 2 && truncatedServed === 0) {
        truncatedServed++;
        return void res.end(truncatedJson(body));
      }
      res.end(JSON.stringify(body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const real = customerSourceFor('sage-accounting', createSageHttp({ maxConcurrency: 4, retries: 0 }), {
        ...stack.config,
        SAGE_ACCOUNTING_API_URL: `http://127.0.0.1:${port}/v3.1`,
      });
      const want = expectations(
        real,
        { tenantId: 'fuzzhttp', provider: 'sage-accounting', partitionId: business },
        items.map((raw, i) => ({ ...cases[i]!, raw })),
      );
      const deps = { mongo: stack.mongo, source: real, tokens: staticTokens, pageSize: 50, overlapSeconds: 0 };
      const input = {
        target: {
          tenantId: 'fuzzhttp',
          provider: 'sage-accounting' as const,
          partition: { id: business, name: 'fuzz' },
        },
        mode: 'full' as const,
        syncWorkflowId: 'fuzz-http',
      };
      let resumeFrom: Checkpoint | null = null;
      let failures = 0;
      // What the activity retry does: run again from the checkpoint the failed attempt left.
      for (;;) {
        try {
          await syncPartition(deps, { ...input, resumeFrom, attempt: failures + 1 });
          break;
        } catch (err) {
          failures++;
          assert.match(String((err as Error).message), /malformed JSON|unexpected list body/);
          resumeFrom = (err as { checkpoint?: Checkpoint }).checkpoint ?? null;
          assert.ok(failures < 3, 'the broken page fails once, then the retry succeeds');
        }
      }
      const stored = await stack.mongo.collection(COLLECTIONS.customers).countDocuments({ tenantId: 'fuzzhttp' });
      const quarantined = await stack.mongo.collection(COLLECTIONS.quarantine).find({ tenantId: 'fuzzhttp' }).toArray();
      console.log(
        `[faults] HTTP path: ${cases.length} fuzzed contacts, ${failures} failed attempt(s) on the cut-short page, stored ${stored}, quarantined ${quarantined.length}, skipped ${want.skipped}`,
      );
      assert.equal(truncatedServed, 1);
      assert.equal(failures, 1);
      assert.equal(stored, want.stored.size);
      assert.deepEqual(new Set(quarantined.map((q) => String(q._id))), want.quarantineIds);
      for (const q of quarantined) assert.ok(typeof q.reason === 'string' && q.reason.length > 0);
    } finally {
      server.close();
    }
  });
});
