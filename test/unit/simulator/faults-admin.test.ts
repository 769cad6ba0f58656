/** Fault injection, counters and the admin API of the simulator (both providers). */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startSimulator, type RunningSimulator } from '../../../src/simulator/server.js';
import { parseSimulatorConfig } from '../../../src/simulator/main.js';
import { accountingToken, admin, json } from './helpers.js';

let sim: RunningSimulator;
before(async () => {
  sim = await startSimulator({ seed: 3, customersPerPartition: 10 });
});
after(async () => sim.close());
beforeEach(() => {
  sim.admin.reset();
});

function accounting() {
  const g = sim.admin.mintGrant({ provider: 'sage-accounting' });
  return (path: string) =>
    fetch(`${sim.env.SAGE_ACCOUNTING_API_URL}${path}`, {
      headers: { authorization: `Bearer ${g.token.access_token}` },
    });
}

describe('simulator faults, counters and admin API', () => {
  it('counters: customer list pages in flight, high-water mark overall and per partition (one contact by id is not a page)', async () => {
    const g = sim.admin.mintGrant({ provider: 'sage-accounting' });
    const businesses = await json<{ $items: { id: string }[] }>(
      await fetch(`${sim.env.SAGE_ACCOUNTING_API_URL}/businesses`, {
        headers: { authorization: `Bearer ${g.token.access_token}` },
      }),
    );
    const [b1, b2] = businesses.$items.map((b) => b.id);
    assert.ok(b1 && b2, 'two businesses');
    const get = (path: string, business: string) =>
      fetch(`${sim.env.SAGE_ACCOUNTING_API_URL}${path}`, {
        headers: { authorization: `Bearer ${g.token.access_token}`, 'x-business': business },
      });
    await admin(sim, 'POST', '/faults', {
      provider: 'sage-accounting',
      scope: 'api',
      pathIncludes: '/contacts',
      kind: 'latency',
      latencyMs: 150,
    });
    const page1 = await json<{ $items: { id: string }[] }>(await get('/contacts?page=1', b1));
    sim.admin.resetCounters();
    const answers = await Promise.all([
      get('/contacts?page=1', b1),
      get('/contacts?page=2', b1),
      get('/contacts?page=3', b1),
      get('/contacts?page=1', b2),
      get(`/contacts/${page1.$items[0]!.id}`, b1),
    ]);
    for (const a of answers) await a.arrayBuffer();
    const c = await admin<{
      customerPagesHighWater: number;
      customerPagesInFlight: number;
      customerPagesHighWaterByPartition: Record<string, number>;
    }>(sim, 'GET', '/counters');
    assert.equal(c.customerPagesHighWater, 4, 'four list pages at once (the single contact is not one)');
    assert.deepEqual(c.customerPagesHighWaterByPartition, { [b1]: 3, [b2]: 1 });
    assert.equal(c.customerPagesInFlight, 0);
  });

  it('fault: 429 with Retry-After for a fixed count, then normal answers', async () => {
    const get = accounting();
    await admin(sim, 'POST', '/faults', {
      provider: 'sage-accounting',
      scope: 'api',
      kind: 'status',
      status: 429,
      retryAfterSeconds: 2,
      count: 2,
    });
    const a = await get('/contacts');
    assert.equal(a.status, 429);
    assert.equal(a.headers.get('retry-after'), '2');
    assert.ok(Array.isArray(await json(a)));
    assert.equal((await get('/contacts')).status, 429);
    assert.equal((await get('/contacts')).status, 200);
    const c = sim.admin.counters();
    assert.equal(c.rateLimited, 2);
    assert.equal(c.faultsInjected, 2);
  });

  it('fault: hold keeps matching requests waiting until the rule is removed, then answers them normally', async () => {
    const get = accounting();
    const { rules } = await admin<{ rules: { id: string }[] }>(sim, 'POST', '/faults', {
      provider: 'sage-accounting',
      scope: 'api',
      kind: 'hold',
    });
    let settled = false;
    const pending = get('/contacts').then((r) => ((settled = true), r));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(settled, false, 'held');
    assert.equal(sim.admin.faults().rules[0]!.hits, 1);
    await admin(sim, 'DELETE', `/faults/${rules[0]!.id}`);
    assert.equal((await pending).status, 200);
  });

  it('fault: 429 without Retry-After, 500 and 503, scoped by provider and endpoint', async () => {
    const get = accounting();
    sim.admin.addFaults([
      { provider: 'sage-accounting', scope: 'api', kind: 'status', status: 429, count: 1 },
      { provider: 'sage-200', scope: 'api', kind: 'status', status: 500 },
      { provider: 'sage-accounting', scope: 'token', kind: 'status', status: 503, count: 1 },
    ]);
    const r = await get('/contacts');
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), null);
    assert.equal((await get('/contacts')).status, 200, 'the sage-200 rule does not touch Sage Accounting');
    const t = await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: 'whatever' });
    assert.equal(t.status, 503);
    assert.equal((await json(t)).error, 'temporarily_unavailable');
    assert.equal((await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: 'whatever' })).status, 400);
    await admin(sim, 'DELETE', '/faults');
    assert.deepEqual((await admin(sim, 'GET', '/faults')).rules, []);
  });

  it('fault: a dropped connection surfaces as a network error', async () => {
    const get = accounting();
    sim.admin.addFaults({ scope: 'api', kind: 'drop', count: 1, pathIncludes: '/contacts' });
    await assert.rejects(get('/contacts'));
    assert.equal((await get('/contacts')).status, 200);
    assert.equal(sim.admin.counters().droppedConnections, 1);
  });

  it('fault: probability 0 never fires, `after` lets the first requests through', async () => {
    const get = accounting();
    sim.admin.addFaults([
      { scope: 'api', kind: 'status', status: 500, probability: 0 },
      { scope: 'api', kind: 'status', status: 503, after: 2, count: 1 },
    ]);
    assert.deepEqual(
      [
        (await get('/contacts')).status,
        (await get('/contacts')).status,
        (await get('/contacts')).status,
        (await get('/contacts')).status,
      ],
      [200, 200, 503, 200],
    );
  });

  it('quirk: Sage Accounting allows 150 concurrent requests per app; more get 429 (latency + high-water mark)', async () => {
    const get = accounting();
    sim.admin.settings({ sageAccounting: { maxConcurrentRequests: 3 } });
    sim.admin.addFaults({ provider: 'sage-accounting', scope: 'api', kind: 'latency', latencyMs: 1000 });
    const statuses = await Promise.all(Array.from({ length: 6 }, () => get('/businesses').then((r) => r.status)));
    assert.equal(statuses.filter((s) => s === 200).length, 3);
    assert.equal(statuses.filter((s) => s === 429).length, 3);
    const c = sim.admin.counters();
    // Rejected requests end at once, so the mark is the limit plus one.
    assert.ok(c.concurrentHighWater >= 4, String(c.concurrentHighWater));
    assert.equal(c.byProvider['sage-accounting'].rateLimited, 3);
  });

  it('counters: requests by path, per-grant refreshes, reset', async () => {
    const get = accounting();
    await get('/contacts');
    await get('/contacts');
    const c = await admin(sim, 'GET', '/counters');
    assert.equal(c.requestsByPath['/sage-accounting/v3.1/contacts'], 2);
    assert.equal(c.apiRequests, 2);
    await admin(sim, 'POST', '/counters/reset');
    assert.equal((await admin(sim, 'GET', '/counters')).apiRequests, 0);
  });

  it('admin: bad input is a 400 naming the problem', async () => {
    const res = await fetch(`${sim.url}/__admin/customers/mutate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ provider: 'nope', partitionId: 'x' }),
    });
    assert.equal(res.status, 400);
    assert.match(JSON.stringify(await json(res)), /provider/);
    const unknown = await fetch(`${sim.url}/__admin/truth/customers?provider=sage-200&partitionId=424242`);
    assert.equal(unknown.status, 404);
  });

  it('admin: reset with a new seed changes the data; the same seed reproduces it', async () => {
    const before = sim.admin.users('sage-accounting').users[0]!.partitions[0]!.partitionId;
    sim.admin.reset({ seed: 99 });
    assert.notEqual(sim.admin.users('sage-accounting').users[0]!.partitions[0]!.partitionId, before);
    sim.admin.reset({ seed: 3 });
    assert.equal(sim.admin.users('sage-accounting').users[0]!.partitions[0]!.partitionId, before);
  });

  it('env lists every URL and credential the service needs', () => {
    for (const k of [
      'SAGE_ACCOUNTING_AUTH_URL',
      'SAGE_ACCOUNTING_TOKEN_URL',
      'SAGE_ACCOUNTING_REVOKE_URL',
      'SAGE_ACCOUNTING_API_URL',
      'SAGE200_AUTH_URL',
      'SAGE200_TOKEN_URL',
      'SAGE200_REVOKE_URL',
      'SAGE200_API_URL',
      'SAGE_ACCOUNTING_CLIENT_ID',
      'SAGE_ACCOUNTING_CLIENT_SECRET',
      'SAGE200_CLIENT_ID',
      'SAGE200_CLIENT_SECRET',
      'SAGE200_SUBSCRIPTION_KEY',
    ]) {
      assert.ok(sim.env[k], k);
    }
    assert.equal(sim.env.SAGE_ACCOUNTING_AUTH_URL, `${sim.url}/sage-accounting/oauth2/auth/central?filter=apiv3.1`);
    assert.equal(sim.env.SAGE200_API_URL, `${sim.url}/sage200/api/uk`);
  });

  it('npm run sim config: service variable names, demo defaults, no TOKEN_ENCRYPTION_KEY needed', () => {
    const o = parseSimulatorConfig({ PUBLIC_BASE_URL: 'https://sync.example.com/', SAGE200_CLIENT_ID: 'real-id' });
    assert.equal(o.port, 4010);
    assert.equal(o.apps?.sageAccounting?.clientId, 'demo-sage-accounting-client');
    assert.equal(o.apps?.sage200?.clientId, 'real-id');
    assert.equal(o.apps?.sage200?.redirectUri, 'https://sync.example.com/oauth/callback');
    assert.throws(() => parseSimulatorConfig({ SIM_PORT: 'abc' }), /SIM_PORT/);
  });

  it('100k customers in one partition generate quickly and page through the API', async () => {
    const started = performance.now();
    const user = sim.admin.createUser({ provider: 'sage-200', partitions: 1, customersPerPartition: 100_000 });
    const genMs = performance.now() - started;
    assert.ok(genMs < 5000, `generation took ${genMs} ms`);
    const g = sim.admin.mintGrant({ provider: 'sage-200', userId: user.id });
    const p = user.partitions[0] as { partitionId: string; siteId: string };
    const res = await fetch(
      `${sim.env.SAGE200_API_URL}/sage200extra/accounts/v1/customers?%24top=5000&%24orderby=date_time_updated%20asc%2C%20id%20asc&%24skip=95000`,
      {
        headers: {
          authorization: `Bearer ${g.token.access_token}`,
          'ocp-apim-subscription-key': sim.env.SAGE200_SUBSCRIPTION_KEY!,
          'X-Company': p.partitionId,
          'X-Site': p.siteId,
        },
      },
    );
    assert.equal((await json(res)).length, 5000);
  });
});
