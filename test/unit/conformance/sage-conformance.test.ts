/**
 * Conformance against Sage's own published material (vendored under `test/fixtures/sage/spec/`, provenance inside each
 * file), not against our simulator:
 * (a) every request the providers build is allowed by the spec (path, query parameter names and formats, headers);
 * (b) every item the simulator serves validates against the spec's definitions (with the documented wire exceptions);
 * (c) each seed example maps to the expected customer (see `seed-examples.test.ts`).
 * The providers talk to the in-process simulator through the real HTTP client; every request is captured.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { OptionsInit } from 'got';
import { createSageHttp, type SageHttp } from '../../../src/providers/http.js';
import { createSageAccountingSource } from '../../../src/providers/sage-accounting/customers.js';
import { createSage200Source } from '../../../src/providers/sage200/customers.js';
import { listSageAccountingBusinesses } from '../../../src/providers/sage-accounting/partitions.js';
import { listSage200Sites } from '../../../src/providers/sage200/partitions.js';
import type { Partition } from '../../../src/messages.js';
import { startSimulator, type RunningSimulator } from '../../../src/simulator/server.js';
import { getParameters, loadSpec, validate } from './spec-oracle.js';

const accountingSpec = loadSpec('sage-accounting-contacts.swagger.json');
const userBusinessSpec = loadSpec('sage-accounting-user-business.swagger.json');
const sage200Fragment = loadSpec('sage200-sop-fragment.swagger.json');
const sage200Fields: Record<string, unknown> = loadSpec('sage200-customer-fields.json').fields;

/** The documented date-time form of `updated_or_created_since` / `deleted_since`: `YYYY-MM-DDThh:mm:ss(+|-)hh:mm`. */
const SAGE_DATE_PARAM = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/;

interface Captured {
  url: URL;
  headers: Record<string, string>;
  body: unknown;
}

let sim: RunningSimulator;
let captured: Captured[] = [];
let http: SageHttp;

before(async () => {
  sim = await startSimulator({ seed: 7, customersPerPartition: 30 });
  const real = createSageHttp({ maxConcurrency: 4, retries: 0 });
  http = {
    ...real,
    async getJson<T>(provider: 'sage-accounting' | 'sage-200', url: string, options: OptionsInit = {}) {
      const res = await real.getJson<T>(provider, url, options);
      captured.push({
        url: new URL(url),
        headers: Object.fromEntries(
          Object.entries((options.headers ?? {}) as Record<string, string>).map(([k, v]) => [
            k.toLowerCase(),
            String(v),
          ]),
        ),
        body: res.body,
      });
      return res;
    },
  };
});
after(async () => sim.close());

function accountingSetup() {
  const grant = sim.admin.mintGrant({ provider: 'sage-accounting' });
  const source = createSageAccountingSource(http, { SAGE_ACCOUNTING_API_URL: sim.env.SAGE_ACCOUNTING_API_URL! });
  return {
    token: grant.token.access_token as string,
    source,
    businessId: String(grant.user.partitions[0]!.partitionId),
  };
}

function sage200Setup() {
  const grant = sim.admin.mintGrant({ provider: 'sage-200' });
  const config = {
    SAGE200_API_URL: sim.env.SAGE200_API_URL!,
    SAGE200_SUBSCRIPTION_KEY: sim.env.SAGE200_SUBSCRIPTION_KEY,
  };
  return {
    token: grant.token.access_token as string,
    source: createSage200Source(http, config),
    config,
    edition: String((grant.user as { edition?: string }).edition),
  };
}

/** Which vendored path a request URL is, relative to the spec's basePath. */
function specPath(url: URL, basePrefix: string): string {
  const rel = url.pathname.slice(url.pathname.indexOf(basePrefix) + basePrefix.length);
  return rel.replace(/^\/contacts\/[^/]+$/, '/contacts/{key}').replace(/^\/businesses\/[^/]+$/, '/businesses/{key}');
}

function checkAccountingRequest(c: Captured, spec: any) {
  const path = specPath(c.url, spec.basePath);
  const params = getParameters(spec, path);
  const contactProps = Object.keys(accountingSpec.definitions.Contact.properties);
  const nestedProps = new Set([
    ...Object.keys(accountingSpec.definitions.Address.properties),
    ...Object.keys(accountingSpec.definitions.ContactPerson.properties),
  ]);
  for (const [name, value] of c.url.searchParams) {
    const p = params.get(name);
    assert.ok(p && p.in === 'query', `${path}: query parameter ${name} is not in Sage's spec`);
    if (p.type === 'integer') assert.match(value, /^\d+$/, `${name}=${value} is not an integer`);
    if (p.type === 'boolean') assert.match(value, /^(true|false)$/, `${name}=${value} is not a boolean`);
    if (name === 'items_per_page')
      assert.ok(Number(value) >= 1 && Number(value) <= 200, 'items_per_page within 1..200');
    if (name.endsWith('_since'))
      assert.match(
        value,
        SAGE_DATE_PARAM,
        `${name}=${value} is not in the documented YYYY-MM-DDThh:mm:ss(+|-)hh:mm form`,
      );
    if (name === 'attributes' && path.startsWith('/contacts'))
      for (const a of value.split(','))
        assert.ok(a === 'all' || contactProps.includes(a), `attribute ${a} is not a Contact property`);
    if (name === 'nested_attributes')
      for (const a of value.split(','))
        assert.ok(a === 'all' || nestedProps.has(a), `nested attribute ${a} is not an Address/ContactPerson property`);
  }
  for (const [name, p] of params)
    if ((p as { required?: boolean }).required && p.in === 'query') assert.ok(c.url.searchParams.has(name));
  assert.match(c.headers.authorization ?? '', /^Bearer \S+$/);
}

describe("conformance (a): requests the providers build are allowed by Sage's spec", () => {
  it('Sage Accounting: list (full and incremental), deletions, single GET, businesses', async () => {
    captured = [];
    const { token, source, businessId } = accountingSetup();
    const target = { tenantId: 't', provider: 'sage-accounting' as const, partition: { id: businessId, name: 'b' } };
    const ctx = { ...target, accessToken: token };
    let cursor = source.startCursor('full', null);
    let first: unknown[] = [];
    for (let i = 0; i < 5; i++) {
      const page = await source.fetchPage(ctx, cursor, { pageSize: 10 });
      if (i === 0) first = page.records;
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    await source.fetchPage(ctx, source.startCursor('incremental', new Date('2024-03-01T10:21:33.456Z')), {
      pageSize: 10,
    });
    await source.deletions!.fetchPage(ctx, source.deletions!.startCursor(new Date('2024-03-01T10:21:33.456Z')), {
      pageSize: 10,
    });
    await source.fetchOne!(ctx, (first[0] as { id: string }).id);
    await listSageAccountingBusinesses(http, { SAGE_ACCOUNTING_API_URL: sim.env.SAGE_ACCOUNTING_API_URL! }, token);
    assert.ok(captured.length >= 6, `captured ${captured.length} requests`);
    for (const c of captured) {
      const spec = c.url.pathname.includes('/businesses') ? userBusinessSpec : accountingSpec;
      checkAccountingRequest(c, spec);
      // X-Business pins every company-specific call (best-practices page); `/businesses` takes none.
      if (spec === accountingSpec) assert.equal(c.headers['x-business'], businessId);
    }
    const list = captured.find((c) => c.url.pathname.endsWith('/contacts'))!;
    assert.equal(list.url.searchParams.get('show_balance'), 'true', 'balance is only shown with show_balance=true');
    assert.ok(list.url.searchParams.get('nested_attributes'), 'nested entities need nested_attributes');
    const incremental = captured.find((c) => c.url.searchParams.has('updated_or_created_since'))!;
    assert.equal(incremental.url.searchParams.get('updated_or_created_since'), '2024-03-01T10:21:33+00:00');
    const single = captured.find((c) => /\/contacts\/[^/]+$/.test(c.url.pathname))!;
    assert.equal(single.url.searchParams.get('show_balance'), 'true');
  });

  it("Sage 200: the base URL is the spec's host/basePath per edition; customers carry X-Company, X-Site, the APIM key and OData options in the documented form", async () => {
    captured = [];
    const { token, source, config, edition } = sage200Setup();
    const sites: Partition[] = await listSage200Sites(http, config, token, edition);
    const ctx = { tenantId: 't', provider: 'sage-200' as const, partition: sites[0]!, edition, accessToken: token };
    let cursor = source.startCursor('incremental', new Date('2024-01-01T00:00:00Z'));
    for (let i = 0; i < 3; i++) {
      const page = await source.fetchPage(ctx, cursor, { pageSize: 7 });
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    const basePath = String(sage200Fragment.basePath).replace('sage200extra', edition).replace(/\/$/, '');
    for (const c of captured) {
      assert.ok(
        c.url.pathname.endsWith(
          `${basePath}${c.url.pathname.slice(c.url.pathname.indexOf(basePath) + basePath.length)}`,
        ),
      );
      assert.ok(c.url.pathname.includes(basePath), `${c.url.pathname} is under ${basePath}`);
      assert.match(c.headers.authorization ?? '', /^Bearer \S+$/);
      assert.ok(c.headers['ocp-apim-subscription-key'], 'the developer subscription key (Sage 200 guide, seed 002)');
      if (c.url.pathname.endsWith('/sites')) continue;
      assert.equal(c.headers['x-company'], sites[0]!.id);
      assert.equal(c.headers['x-site'], sites[0]!.siteId);
      for (const name of c.url.searchParams.keys())
        assert.ok(
          ['$top', '$skip', '$orderby', '$filter', '$expand', '$select'].includes(name),
          `OData option ${name}`,
        );
      const filter = c.url.searchParams.get('$filter');
      // Sage 200 query-parameters guide: datetimes in $filter are unquoted and end in Z.
      if (filter) assert.match(filter, /^date_time_updated ge \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
      assert.ok(Number(c.url.searchParams.get('$top')) <= 5000);
    }
    assert.ok(captured.filter((c) => c.url.pathname.endsWith('/customers')).length >= 2, 'paged through several pages');
  });
});

describe("conformance (b): what the simulator serves validates against Sage's definitions", () => {
  it('Sage Accounting contacts (as the provider asks for them) are Contact items: known fields, spec types', async () => {
    captured = [];
    const { token, source, businessId } = accountingSetup();
    const ctx = {
      tenantId: 't',
      provider: 'sage-accounting' as const,
      partition: { id: businessId, name: 'b' },
      accessToken: token,
    };
    const page = await source.fetchPage(ctx, source.startCursor('full', null), { pageSize: 50 });
    assert.ok(page.records.length > 0);
    for (const item of page.records)
      assert.deepEqual(validate(accountingSpec, { $ref: '#/definitions/Contact' }, item), []);
    // And with attributes=all / nested_attributes=all, everything the simulator can say is in the spec too.
    const res = await fetch(
      `${sim.env.SAGE_ACCOUNTING_API_URL}/contacts?attributes=all&nested_attributes=all&show_balance=true&items_per_page=50`,
      {
        headers: { authorization: `Bearer ${token}`, 'x-business': businessId },
      },
    );
    const all = (await res.json()) as { $items: unknown[] };
    for (const item of all.$items)
      assert.deepEqual(validate(accountingSpec, { $ref: '#/definitions/Contact' }, item), []);
  });

  it('Sage Accounting businesses are Business items', async () => {
    const { token, businessId } = accountingSetup();
    const res = await fetch(`${sim.env.SAGE_ACCOUNTING_API_URL}/businesses/${businessId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.deepEqual(validate(userBusinessSpec, { $ref: '#/definitions/Business' }, await res.json()), []);
  });

  it("Sage 200 customers use only the field names of Sage's customer field list, with its JSON types, and zone-less (UTC) date-times", async () => {
    const { token, config, edition } = sage200Setup();
    const sites = await listSage200Sites(http, config, token, edition);
    const res = await fetch(
      `${sim.env.SAGE200_API_URL}/${edition}/accounts/v1/customers?$expand=main_address,contacts,currency,country_code`,
      {
        headers: {
          authorization: `Bearer ${token}`,
          'x-company': sites[0]!.id,
          'x-site': sites[0]!.siteId!,
          'ocp-apim-subscription-key': config.SAGE200_SUBSCRIPTION_KEY!,
        },
      },
    );
    const items = (await res.json()) as Record<string, unknown>[];
    assert.ok(items.length > 0);
    for (const item of items) {
      for (const [k, v] of Object.entries(item)) {
        assert.ok(k in sage200Fields, `${k} is not in Sage's customer field list`);
        const example = sage200Fields[k];
        const kind = (x: unknown) => (Array.isArray(x) ? 'array' : x === null ? 'null' : typeof x);
        // The DTO docblock writes on_hold as "false"; Sage's APIM sample and seed use a boolean.
        if (k !== 'on_hold')
          assert.equal(kind(v), kind(example), `${k}: ${kind(v)} where Sage's list has ${kind(example)}`);
      }
      // Sage's own sample (seed 002): "date_time_updated": "2016-07-08T15:28:48.66" — no zone, variable fraction.
      assert.match(String(item.date_time_updated), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?$/);
    }
  });
});
