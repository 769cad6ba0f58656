/**
 * The simulator's Sage 200 behaviour (Sage ID OAuth on Auth0 + the UK Sage 200 API): each quirk pinned by a test named
 * after it, plus a client written straight from Sage's documentation. In-process simulator, small data.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startSimulator, type RunningSimulator } from '../../../src/simulator/server.js';
import { admin, consent, json, REDIRECT, sage200AuthUrl, sage200Token } from './helpers.js';

let sim: RunningSimulator;
before(async () => {
  sim = await startSimulator({ seed: 7, customersPerPartition: 60 });
});
after(async () => sim.close());
beforeEach(() => {
  sim.admin.reset();
});

interface Conn {
  token: {
    access_token: string;
    refresh_token?: string;
    expires_in: number;
    id_token: string;
    scope: string;
    token_type: string;
  };
  userId: string;
  site: { companyId: string; siteId: string };
}

/** A grant minted by the admin API (skips the browser dance). */
function mint(opts: { userId?: string; scope?: string } = {}): Conn {
  const g = sim.admin.mintGrant({ provider: 'sage-200', ...opts });
  const p = g.user.partitions[0]! as { partitionId: string; siteId: string };
  return { token: g.token as Conn['token'], userId: g.userId, site: { companyId: p.partitionId, siteId: p.siteId } };
}

function base(edition = 'sage200extra') {
  return `${sim.env.SAGE200_API_URL}/${edition}/accounts/v1`;
}

function api(path: string, c: Conn, headers: Record<string, string | undefined> = {}, edition?: string) {
  const h: Record<string, string> = {};
  const all: Record<string, string | undefined> = {
    authorization: `Bearer ${c.token.access_token}`,
    'ocp-apim-subscription-key': sim.env.SAGE200_SUBSCRIPTION_KEY,
    'X-Company': c.site.companyId,
    'X-Site': c.site.siteId,
    'content-type': 'application/json',
    ...headers,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) h[k] = v;
  return fetch(`${base(edition)}${path}`, { headers: h });
}

const q = (params: Record<string, string>) => `?${new URLSearchParams(params).toString()}`;

describe('Sage 200 simulator', () => {
  it('a client written straight from the docs works: authorize, token, sites, customers paged with $top/$skip/$orderby, refresh', async () => {
    const cb = await consent(sage200AuthUrl(sim));
    assert.equal(cb.get('state'), 'st-200');
    const res = await sage200Token(sim, {
      grant_type: 'authorization_code',
      code: cb.get('code')!,
      redirect_uri: REDIRECT,
    });
    assert.equal(res.status, 200);
    const token = await json(res);
    assert.equal(token.expires_in, 28800);
    assert.equal(token.token_type, 'Bearer');
    assert.ok(token.refresh_token && token.id_token);
    const sitesRes = await fetch(`${base()}/sites`, {
      headers: {
        authorization: `Bearer ${token.access_token}`,
        'ocp-apim-subscription-key': sim.env.SAGE200_SUBSCRIPTION_KEY!,
      },
    });
    const sites = await json(sitesRes);
    assert.ok(Array.isArray(sites) && sites.length === 2);
    assert.deepEqual(Object.keys(sites[0]).sort(), [
      'company_id',
      'company_name',
      'site_id',
      'site_name',
      'site_short_name',
      'tenant_id',
    ]);
    for (const s of sites) {
      const c: Conn = { token, userId: '', site: { companyId: String(s.company_id), siteId: s.site_id } };
      const ids: number[] = [];
      for (let skip = 0; ; skip += 25) {
        const page = await json(
          await api(`/customers${q({ $top: '25', $skip: String(skip), $orderby: 'id asc' })}`, c),
        );
        ids.push(...page.map((x: { id: number }) => x.id));
        if (page.length < 25) break;
      }
      const truth = sim.admin.truth('sage-200', String(s.company_id));
      assert.deepEqual(
        ids.map(String),
        truth.customers.map((t) => t.id),
      );
    }
    const refreshed = await json(
      await sage200Token(sim, {
        grant_type: 'refresh_token',
        refresh_token: token.refresh_token,
        redirect_uri: REDIRECT,
      }),
    );
    assert.notEqual(refreshed.refresh_token, token.refresh_token);
    const revoke = await fetch(sim.env.SAGE200_REVOKE_URL!, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: sim.apps.sage200.clientId,
        client_secret: sim.apps.sage200.clientSecret,
        token: refreshed.refresh_token,
      }),
    });
    assert.equal(revoke.status, 200);
    assert.equal(sim.admin.counters().byProvider['sage-200'].revokes, 1);
  });

  describe('Sage ID OAuth', () => {
    it('quirk: a refresh token is issued only when offline_access is in the scope', async () => {
      const cb = await consent(sage200AuthUrl(sim, { scope: 'openid profile email' }));
      const token = await json(
        await sage200Token(sim, { grant_type: 'authorization_code', code: cb.get('code')!, redirect_uri: REDIRECT }),
      );
      assert.ok(token.access_token);
      assert.equal(token.refresh_token, undefined);
    });

    it('quirk: without the audience the tokens are not accepted by the Sage 200 API; a wrong audience is refused', async () => {
      const cb = await consent(sage200AuthUrl(sim, { audience: undefined }));
      const token = await json(
        await sage200Token(sim, { grant_type: 'authorization_code', code: cb.get('code')!, redirect_uri: REDIRECT }),
      );
      const res = await fetch(`${base()}/sites`, {
        headers: {
          authorization: `Bearer ${token.access_token}`,
          'ocp-apim-subscription-key': sim.env.SAGE200_SUBSCRIPTION_KEY!,
        },
      });
      assert.equal(res.status, 401);
      const wrong = await consent(sage200AuthUrl(sim, { audience: 'something/else' }));
      assert.equal(wrong.get('error'), 'access_denied');
    });

    it('quirk: redirect URI mismatch gets an error page, not a redirect', async () => {
      const res = await fetch(sage200AuthUrl(sim, { redirect_uri: 'http://LOCALHOST:3000/oauth/callback' }), {
        redirect: 'manual',
      });
      assert.equal(res.status, 400);
    });

    it('quirk: invalid_grant is HTTP 403 (Auth0) for a used authorization code', async () => {
      const cb = await consent(sage200AuthUrl(sim));
      const body = { grant_type: 'authorization_code', code: cb.get('code')!, redirect_uri: REDIRECT };
      assert.equal((await sage200Token(sim, body)).status, 200);
      const again = await sage200Token(sim, body);
      assert.equal(again.status, 403);
      assert.equal((await json(again)).error, 'invalid_grant');
    });

    it('quirk: PKCE S256 — a code issued with a challenge needs the matching verifier (wrong or missing: 403 invalid_grant, code still usable)', async () => {
      const { createHash } = await import('node:crypto');
      const verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      const cb = await consent(sage200AuthUrl(sim, { code_challenge: challenge, code_challenge_method: 'S256' }));
      const body = { grant_type: 'authorization_code', code: cb.get('code')!, redirect_uri: REDIRECT };
      // A client ignoring PKCE (no verifier), or an attacker holding only the code, is refused...
      const missing = await sage200Token(sim, body);
      assert.equal(missing.status, 403);
      assert.equal((await json(missing)).error, 'invalid_grant');
      const wrong = await sage200Token(sim, { ...body, code_verifier: 'x'.repeat(43) });
      assert.equal(wrong.status, 403);
      assert.equal((await json(wrong)).error, 'invalid_grant');
      // ...and the holder of the verifier still exchanges it.
      assert.equal((await sage200Token(sim, { ...body, code_verifier: verifier })).status, 200);
      // A challenge of the wrong length is refused at the authorize step.
      const res = await fetch(sage200AuthUrl(sim, { code_challenge: 'short', code_challenge_method: 'S256' }), {
        redirect: 'manual',
      });
      assert.equal(new URL(res.headers.get('location')!).searchParams.get('error'), 'invalid_request');
    });

    it('quirk: refresh token is single-use and presenting a rotated-away one revokes the whole grant (Auth0 reuse detection)', async () => {
      const c = mint();
      const first = await json(
        await sage200Token(sim, { grant_type: 'refresh_token', refresh_token: c.token.refresh_token! }),
      );
      const replay = await sage200Token(sim, { grant_type: 'refresh_token', refresh_token: c.token.refresh_token! });
      assert.equal(replay.status, 403);
      assert.deepEqual(await json(replay), {
        error: 'invalid_grant',
        error_description: 'Unknown or invalid refresh token.',
      });
      assert.equal(sim.admin.counters().reusedRefreshTokens, 1);
      // The newest token died with the family.
      assert.equal(
        (await sage200Token(sim, { grant_type: 'refresh_token', refresh_token: first.refresh_token })).status,
        403,
      );
      assert.equal((await api('/sites', { ...c, token: first })).status, 401);
    });

    it('quirk: a wrong client secret is invalid_client with HTTP 401', async () => {
      const c = mint();
      const res = await sage200Token(sim, {
        client_secret: 'wrong',
        grant_type: 'refresh_token',
        refresh_token: c.token.refresh_token!,
      });
      assert.equal(res.status, 401);
      assert.equal((await json(res)).error, 'invalid_client');
    });

    it('quirk: the token endpoint accepts JSON as well as form bodies (Auth0)', async () => {
      const c = mint();
      const res = await fetch(sim.env.SAGE200_TOKEN_URL!, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_id: sim.apps.sage200.clientId,
          client_secret: sim.apps.sage200.clientSecret,
          grant_type: 'refresh_token',
          refresh_token: c.token.refresh_token,
        }),
      });
      assert.equal(res.status, 200);
    });

    it('quirk: the access token lives 28800 s; the refresh token 90 days by default', async () => {
      const c = mint();
      assert.equal(c.token.expires_in, 28800);
      sim.admin.clock({ advanceSeconds: 28801 });
      assert.equal((await api('/sites', c)).status, 401);
      assert.equal(
        (await sage200Token(sim, { grant_type: 'refresh_token', refresh_token: c.token.refresh_token! })).status,
        200,
      );
      const d = mint();
      sim.admin.clock({ advanceSeconds: 90 * 86400 + 1 });
      assert.equal(
        (await sage200Token(sim, { grant_type: 'refresh_token', refresh_token: d.token.refresh_token! })).status,
        403,
      );
    });
  });

  describe('API', () => {
    it('quirk: ocp-apim-subscription-key is required (API Management 401 JSON) unless switched off', async () => {
      const c = mint();
      const missing = await api('/customers', c, { 'ocp-apim-subscription-key': undefined });
      assert.equal(missing.status, 401);
      assert.match((await json(missing)).message, /missing subscription key/);
      const wrong = await api('/customers', c, { 'ocp-apim-subscription-key': 'nope' });
      assert.match((await json(wrong)).message, /invalid subscription key/);
      sim.admin.settings({ sage200: { requireSubscriptionKey: false } });
      assert.equal((await api('/customers', c, { 'ocp-apim-subscription-key': undefined })).status, 200);
    });

    it('quirk: missing or wrong X-Company / X-Site is 401 with an empty body', async () => {
      const c = mint();
      for (const headers of [
        { 'X-Site': undefined },
        { 'X-Company': undefined },
        { 'X-Site': '00000000-0000-4000-a000-000000000000' },
        { 'X-Company': '999999' },
      ]) {
        const res = await api('/customers', c, headers);
        assert.equal(res.status, 401, JSON.stringify(headers));
        assert.equal(await res.text(), '');
      }
      // A company of another user is just as unauthorised.
      const other = mint();
      assert.equal(
        (await api('/customers', c, { 'X-Company': other.site.companyId, 'X-Site': other.site.siteId })).status,
        401,
      );
    });

    it('quirk: an expired or unknown bearer token is 401 with an empty body', async () => {
      const c = mint();
      sim.admin.expireAccessTokens({ provider: 'sage-200' });
      const res = await api('/customers', c);
      assert.equal(res.status, 401);
      assert.equal(await res.text(), '');
    });

    it('quirk: calling the other edition (sage200 vs sage200extra) is 401', async () => {
      const c = mint();
      assert.equal((await api('/sites', c, {}, 'sage200')).status, 401);
      const std = sim.admin.createUser({ provider: 'sage-200', edition: 'sage200' });
      const s = mint({ userId: std.id });
      assert.equal((await api('/sites', s, {}, 'sage200')).status, 200);
    });

    it('quirk: list responses are bare JSON arrays', async () => {
      const c = mint();
      const body = await json(await api('/customers', c));
      assert.ok(Array.isArray(body));
      assert.equal(body.length, 60);
    });

    it('quirk: $skip without $orderby is rejected', async () => {
      const c = mint();
      const res = await api(`/customers${q({ $skip: '10' })}`, c);
      assert.equal(res.status, 400);
      assert.match((await json(res)).Message, /\$skip requires \$orderby/);
      assert.equal((await api(`/customers${q({ $skip: '10', $orderby: 'id asc' })}`, c)).status, 200);
    });

    it('quirk: $top defaults to 500 and may not exceed 5000', async () => {
      const big = sim.admin.createUser({ provider: 'sage-200', partitions: 1, customersPerPartition: 700 });
      const c = mint({ userId: big.id });
      assert.equal((await json(await api('/customers', c))).length, 500);
      assert.equal((await json(await api(`/customers${q({ $top: '5000' })}`, c))).length, 700);
      const res = await api(`/customers${q({ $top: '5001' })}`, c);
      assert.equal(res.status, 400);
      assert.match((await json(res)).Message, /5000/);
    });

    it('quirk: $filter datetimes are unquoted and must end in Z', async () => {
      const c = mint();
      assert.equal(
        (await api(`/customers${q({ $filter: 'date_time_updated gt 2024-01-01T00:00:00Z' })}`, c)).status,
        200,
      );
      assert.equal(
        (await api(`/customers${q({ $filter: 'date_time_updated gt 2024-01-01T00:00:00' })}`, c)).status,
        400,
      );
      assert.equal(
        (await api(`/customers${q({ $filter: "date_time_updated gt '2024-01-01T00:00:00Z'" })}`, c)).status,
        400,
      );
      assert.equal((await api(`/customers${q({ $filter: 'nonsense gt 1' })}`, c)).status, 400);
    });

    it('quirk: $filter date_time_updated gt is strict and ge inclusive; and/or/brackets work', async () => {
      const c = mint();
      const all = await json(
        await api(`/customers${q({ $orderby: 'date_time_updated asc, id asc', $top: '5000' })}`, c),
      );
      const pivot = all[20];
      // The wire value has no zone (UTC meant); a $filter datetime must end in Z.
      const at_ = `${pivot.date_time_updated}Z`;
      const gt = await json(await api(`/customers${q({ $filter: `date_time_updated gt ${at_}`, $top: '5000' })}`, c));
      const ge = await json(await api(`/customers${q({ $filter: `date_time_updated ge ${at_}`, $top: '5000' })}`, c));
      const at = all.filter((x: any) => x.date_time_updated === pivot.date_time_updated).length;
      assert.equal(ge.length - gt.length, at);
      const combo = await json(
        await api(
          `/customers${q({ $filter: `(date_time_updated eq ${at_} and id ge ${pivot.id}) or id eq ${all[0].id}`, $top: '5000' })}`,
          c,
        ),
      );
      assert.ok(combo.some((x: any) => x.id === pivot.id) && combo.some((x: any) => x.id === all[0].id));
    });

    it('quirk: several customers share the exact same date_time_updated (ties), with a variable fraction', async () => {
      const c = mint();
      const all = await json(await api(`/customers${q({ $top: '5000' })}`, c));
      const stamps = all.map((x: any) => x.date_time_updated);
      assert.ok(new Set(stamps).size < stamps.length);
      assert.ok(stamps.every((s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,2})?$/.test(s)));
    });

    it('quirk: date-times carry no zone (UTC meant) and a variable fraction, as in Sage\'s own sample "2016-07-08T15:28:48.66"', async () => {
      const c = mint();
      const all = await json(await api(`/customers${q({ $top: '5000', $expand: 'currency' })}`, c));
      const stamps: string[] = all.flatMap((x: any) => [
        x.date_time_updated,
        x.date_time_created,
        x.currency.date_time_updated,
      ]);
      assert.ok(
        stamps.every((s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?$/.test(s)),
        'no Z, no offset',
      );
      assert.ok(new Set(stamps.map((s) => (s.split('.')[1] ?? '').length)).size > 1, 'fractions of different lengths');
      const truth = sim.admin.truth('sage-200', c.site.companyId).customers;
      const byId = new Map(truth.map((t) => [t.id, t]));
      // Read as UTC, each wire value is the true instant.
      for (const x of all)
        assert.equal(
          new Date(`${x.date_time_updated}Z`).toISOString(),
          new Date(byId.get(String(x.id))!.updated_at).toISOString(),
        );
    });

    it("quirk: a site removed from the user's reach answers 401 with an empty body for a valid token, and leaves /sites", async () => {
      const c = mint();
      assert.equal((await api('/customers', c)).status, 200);
      await admin(sim, 'POST', '/site-access', { userId: c.userId, companyId: c.site.companyId, reachable: false });
      const res = await api('/customers', c);
      assert.equal(res.status, 401);
      assert.equal(await res.text(), '');
      const sites = await json(await api('/sites', c));
      assert.equal(
        sites.some((s: any) => String(s.company_id) === c.site.companyId),
        false,
      );
      assert.ok(sites.length > 0, "the user's other sites stay");
      await admin(sim, 'POST', '/site-access', { userId: c.userId, companyId: c.site.companyId, reachable: true });
      assert.equal((await api('/customers', c)).status, 200, 'restored');
    });

    it('a client that treats the unreachable-site 401 as an expired token refreshes for nothing: a fresh token still gets 401', async () => {
      const c = mint();
      await admin(sim, 'POST', '/site-access', { userId: c.userId, companyId: c.site.companyId, reachable: false });
      const refreshed = await json(
        await sage200Token(sim, { grant_type: 'refresh_token', refresh_token: c.token.refresh_token! }),
      );
      assert.ok(refreshed.access_token);
      assert.equal((await api('/customers', { ...c, token: refreshed })).status, 401);
    });

    it("quirk: a missing or wrong APIM subscription key answers 401 with API Management's message (not the token)", async () => {
      const c = mint();
      const missing = await api('/customers', c, { 'ocp-apim-subscription-key': undefined });
      assert.equal(missing.status, 401);
      assert.match((await json(missing)).message, /missing subscription key/);
      const wrong = await api('/customers', c, { 'ocp-apim-subscription-key': 'not-the-key' });
      assert.equal(wrong.status, 401);
      assert.match((await json(wrong)).message, /invalid subscription key/);
    });

    it('a client that ignores the zone-less quirk (demands a zone, or echoes the wire value into $filter) fails', async () => {
      const c = mint();
      const [first] = await json(
        await api(`/customers${q({ $top: '1', $orderby: 'date_time_updated asc, id asc' })}`, c),
      );
      assert.equal(
        Number.isNaN(Date.parse(first.date_time_updated)) ? 'invalid' : 'parsed',
        'parsed',
        'JS Date parses it, but as local time',
      );
      assert.equal(
        /(Z|[+-]\d\d:\d\d)$/.test(first.date_time_updated),
        false,
        'a parser demanding a zone rejects every customer',
      );
      const echoed = await api(`/customers${q({ $filter: `date_time_updated gt ${first.date_time_updated}` })}`, c);
      assert.equal(echoed.status, 400, 'the wire value echoed into $filter is refused: it must end in Z');
    });

    it('a client ignoring the ties quirk (paging by "date_time_updated gt <last seen>") misses customers', async () => {
      const c = mint();
      const seen = new Set<number>();
      let last: string | null = null;
      for (let i = 0; i < 100; i++) {
        const params: Record<string, string> = { $top: '3', $orderby: 'date_time_updated asc, id asc' };
        if (last) params.$filter = `date_time_updated gt ${last}`;
        const page = await json(await api(`/customers${q(params)}`, c));
        for (const x of page) seen.add(x.id);
        if (page.length < 3) break;
        last = `${page[page.length - 1].date_time_updated}Z`;
      }
      assert.ok(seen.size < 60, `naive gt paging saw ${seen.size} of 60`);
    });

    it('quirk: deleted customers simply disappear (no deleted feed): found only by full reconciliation', async () => {
      const c = mint();
      const { deleted } = sim.admin.mutate({
        provider: 'sage-200',
        partitionId: c.site.companyId,
        delete: 3,
        update: 2,
        create: 1,
      });
      const all = await json(await api(`/customers${q({ $top: '5000', $select: 'id' })}`, c));
      const ids = new Set(all.map((x: any) => String(x.id)));
      assert.equal(all.length, 58);
      for (const id of deleted) assert.ok(!ids.has(id));
      assert.equal((await api(`/customers/${deleted[0]}`, c)).status, 404);
      const truth = sim.admin.truth('sage-200', c.site.companyId).customers;
      assert.deepEqual(
        truth
          .filter((t) => !t.deleted)
          .map((t) => t.id)
          .sort(),
        [...ids].sort(),
      );
    });

    it('quirk: e-mail addresses live only under contacts[] and nested objects need $expand', async () => {
      const c = mint();
      const [plain] = await json(await api(`/customers${q({ $top: '1' })}`, c));
      assert.equal(plain.email, undefined);
      assert.equal(plain.main_address, undefined);
      const [expanded] = await json(
        await api(`/customers${q({ $top: '1', $expand: 'main_address,contacts,currency,country_code' })}`, c),
      );
      assert.ok(expanded.main_address.postcode);
      assert.ok(Array.isArray(expanded.contacts));
      assert.equal(expanded.currency.id, expanded.currency_id);
    });

    it('quirk: $select returns only the named fields; unknown ones are a 400', async () => {
      const c = mint();
      const rows = await json(await api(`/customers${q({ $top: '2', $select: 'id,reference,date_time_updated' })}`, c));
      assert.deepEqual(Object.keys(rows[0]).sort(), ['date_time_updated', 'id', 'reference']);
      assert.equal((await api(`/customers${q({ $select: 'id,shoe_size' })}`, c)).status, 400);
    });

    it('quirk: numbers are JSON numbers (balance, credit_limit) and ids are integers', async () => {
      const c = mint();
      const rows = await json(await api(`/customers${q({ $top: '5' })}`, c));
      for (const r of rows) {
        assert.equal(typeof r.balance, 'number');
        assert.equal(typeof r.credit_limit, 'number');
        assert.ok(Number.isInteger(r.id));
      }
    });
  });

  it('admin: users and partitions are listed, and mutations bump updated_at to now (tied)', async () => {
    const { users } = await admin(sim, 'GET', '/users?provider=sage-200');
    assert.equal(users.length, 2);
    const pid = users[0].partitions[0].partitionId;
    const r = await admin(sim, 'POST', '/customers/mutate', {
      provider: 'sage-200',
      userId: users[0].id,
      partitionId: pid,
      update: 4,
      create: 2,
    });
    assert.equal(r.updated.length, 4);
    assert.equal(r.created.length, 2);
    const truth = await admin(sim, 'GET', `/truth/customers?provider=sage-200&partitionId=${pid}`);
    const touched = truth.customers.filter((t: any) => [...r.updated, ...r.created].includes(t.id));
    assert.equal(new Set(touched.map((t: any) => t.updated_at)).size, 1);
  });
});
