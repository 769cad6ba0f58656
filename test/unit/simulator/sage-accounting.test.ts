/**
 * The simulator's Sage Accounting behaviour: every quirk the service must cope with, each pinned by a test named after
 * it, plus a client written straight from Sage's documentation. In-process simulator on a random port, small data.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startSimulator, type RunningSimulator } from '../../../src/simulator/server.js';
import { accountingAuthUrl, accountingToken, admin, consent, form, json, REDIRECT } from './helpers.js';

let sim: RunningSimulator;
before(async () => {
  sim = await startSimulator({ seed: 42, customersPerPartition: 45 });
});
after(async () => sim.close());
beforeEach(() => {
  sim.admin.reset();
});

async function connect(params: Record<string, string | undefined> = {}) {
  const cb = await consent(accountingAuthUrl(sim, params));
  const res = await accountingToken(sim, {
    grant_type: 'authorization_code',
    code: cb.get('code')!,
    redirect_uri: REDIRECT,
  });
  assert.equal(res.status, 200);
  return json<{
    access_token: string;
    refresh_token: string;
    expires_in: number;
    refresh_token_expires_in: number;
    requested_by_id: string;
    scope: string;
  }>(res);
}

function api(path: string, token: string, headers: Record<string, string> = {}) {
  return fetch(`${sim.env.SAGE_ACCOUNTING_API_URL}${path}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...headers },
  });
}

async function userFor(requestedById: string) {
  const { users } = await admin(sim, 'GET', '/users?provider=sage-accounting');
  return users.find((u: { uuid: string }) => u.uuid === requestedById);
}

describe('Sage Accounting simulator', () => {
  it('a client written straight from the docs works: consent, token, businesses, paged contacts, refresh, revoke', async () => {
    const cb = await consent(accountingAuthUrl(sim, { state: 'xyz' }));
    assert.equal(cb.get('state'), 'xyz');
    const tokenRes = await accountingToken(sim, {
      grant_type: 'authorization_code',
      code: cb.get('code')!,
      redirect_uri: REDIRECT,
    });
    const tokens = await json(tokenRes);
    assert.equal(tokens.token_type, 'bearer');
    assert.equal(tokens.expires_in, 300);
    assert.equal(tokens.refresh_token_expires_in, 2678400);
    assert.equal(tokens.scope, 'full_access');
    assert.ok(tokens.access_token.length > 1000, 'JWT-sized tokens');

    const businesses = await json(await api('/businesses', tokens.access_token));
    assert.equal(businesses.$items.length, 3);
    const user = await userFor(tokens.requested_by_id);
    for (const business of businesses.$items) {
      // Page through $next until it is null, as the pagination guide says.
      const seen: string[] = [];
      let next: string | null = '/contacts?contact_type_id=CUSTOMER&items_per_page=10&attributes=updated_at,reference';
      while (next) {
        const page: any = await json(await api(next, tokens.access_token, { 'X-Business': business.id }));
        seen.push(...page.$items.map((i: { id: string }) => i.id));
        next = page.$next;
      }
      const truth = await admin(
        sim,
        'GET',
        `/truth/customers?provider=sage-accounting&partitionId=${business.id}&userId=${user.id}`,
      );
      assert.deepEqual(
        seen,
        truth.customers.map((c: { id: string }) => c.id),
      );
      assert.equal(seen.length, 45);
    }

    const refreshed = await json(
      await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
    );
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    assert.equal((await api('/businesses', refreshed.access_token)).status, 200);

    const revoke = await fetch(
      sim.env.SAGE_ACCOUNTING_REVOKE_URL!,
      form({
        client_id: sim.apps.sageAccounting.clientId,
        client_secret: sim.apps.sageAccounting.clientSecret,
        token: refreshed.refresh_token,
      }),
    );
    assert.equal(revoke.status, 200);
    assert.deepEqual(await json(revoke), { success: 'ok' });
    const c = sim.admin.counters();
    assert.equal(c.byProvider['sage-accounting'].consents, 1);
    assert.equal(c.byProvider['sage-accounting'].codeExchanges, 1);
    assert.equal(c.byProvider['sage-accounting'].refreshes, 1);
    assert.equal(c.byProvider['sage-accounting'].revokes, 1);
  });

  describe('OAuth', () => {
    it('quirk: the authorization code carries a region prefix and country comes back on the redirect', async () => {
      const cb = await consent(accountingAuthUrl(sim));
      assert.match(cb.get('code')!, /^GB\//);
      assert.equal(cb.get('country'), 'GB');
      assert.equal(cb.get('state'), 'st-123');
    });

    it('quirk: registered redirect URIs are case-sensitive (mismatch gets an error page, no redirect)', async () => {
      const res = await fetch(accountingAuthUrl(sim, { redirect_uri: REDIRECT.replace('callback', 'Callback') }), {
        redirect: 'manual',
      });
      assert.equal(res.status, 400);
      assert.equal(res.headers.get('location'), null);
    });

    it('quirk: an unknown client_id gets an error page, not a redirect', async () => {
      const res = await fetch(accountingAuthUrl(sim, { client_id: 'someone-else' }), { redirect: 'manual' });
      assert.equal(res.status, 400);
    });

    it('quirk: a country that does not match the business country fails the consent', async () => {
      const cb = await consent(accountingAuthUrl(sim, { country: 'us' }));
      assert.equal(cb.get('error'), 'invalid_request');
      assert.equal(cb.get('code'), null);
      assert.equal((await consent(accountingAuthUrl(sim, { country: 'gb' }))).get('country'), 'GB');
    });

    it('quirk: a denied consent redirects with error=access_denied and the state', async () => {
      await admin(sim, 'POST', '/next-consent', { provider: 'sage-accounting', deny: 'access_denied' });
      const cb = await consent(accountingAuthUrl(sim));
      assert.equal(cb.get('error'), 'access_denied');
      assert.equal(cb.get('state'), 'st-123');
      assert.equal(sim.admin.counters().consentDenials, 1);
    });

    it('quirk: a bad scope or missing state comes back as an error on the redirect', async () => {
      assert.equal((await consent(accountingAuthUrl(sim, { scope: 'everything' }))).get('error'), 'invalid_scope');
      assert.equal((await consent(accountingAuthUrl(sim, { state: undefined }))).get('error'), 'invalid_request');
    });

    it('quirk: the token endpoint requires form encoding (a JSON body is rejected)', async () => {
      const cb = await consent(accountingAuthUrl(sim));
      const res = await fetch(sim.env.SAGE_ACCOUNTING_TOKEN_URL!, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({
          client_id: sim.apps.sageAccounting.clientId,
          client_secret: sim.apps.sageAccounting.clientSecret,
          grant_type: 'authorization_code',
          code: cb.get('code'),
          redirect_uri: REDIRECT,
        }),
      });
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_request');
    });

    it('quirk: the token endpoint requires Accept: application/json', async () => {
      const cb = await consent(accountingAuthUrl(sim));
      const req = form({
        client_id: sim.apps.sageAccounting.clientId,
        client_secret: sim.apps.sageAccounting.clientSecret,
        grant_type: 'authorization_code',
        code: cb.get('code')!,
        redirect_uri: REDIRECT,
      });
      delete req.headers.accept;
      const res = await fetch(sim.env.SAGE_ACCOUNTING_TOKEN_URL!, req);
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_request');
    });

    it('quirk: client credentials in HTTP Basic are accepted as well as in the body', async () => {
      const cb = await consent(accountingAuthUrl(sim));
      const req = form({ grant_type: 'authorization_code', code: cb.get('code')!, redirect_uri: REDIRECT });
      req.headers.authorization = `Basic ${Buffer.from(`${sim.apps.sageAccounting.clientId}:${sim.apps.sageAccounting.clientSecret}`).toString('base64')}`;
      assert.equal((await fetch(sim.env.SAGE_ACCOUNTING_TOKEN_URL!, req)).status, 200);
    });

    it('quirk: a wrong client secret is invalid_client with HTTP 400', async () => {
      const cb = await consent(accountingAuthUrl(sim));
      const res = await accountingToken(sim, {
        client_secret: 'nope',
        grant_type: 'authorization_code',
        code: cb.get('code')!,
        redirect_uri: REDIRECT,
      });
      assert.equal(res.status, 400);
      assert.deepEqual(Object.keys(await json(res)).sort(), ['error', 'error_description']);
    });

    it('quirk: the authorization code is single-use', async () => {
      const cb = await consent(accountingAuthUrl(sim));
      const body = { grant_type: 'authorization_code', code: cb.get('code')!, redirect_uri: REDIRECT };
      assert.equal((await accountingToken(sim, body)).status, 200);
      const again = await accountingToken(sim, body);
      assert.equal(again.status, 400);
      assert.equal((await json(again)).error, 'invalid_grant');
    });

    it('quirk: the authorization code expires after 60 s', async () => {
      const cb = await consent(accountingAuthUrl(sim));
      sim.admin.clock({ advanceSeconds: 61 });
      const res = await accountingToken(sim, {
        grant_type: 'authorization_code',
        code: cb.get('code')!,
        redirect_uri: REDIRECT,
      });
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_grant');
    });

    it('quirk: a redirect_uri at the token endpoint that differs from the authorize one is invalid_grant', async () => {
      const cb = await consent(accountingAuthUrl(sim));
      const res = await accountingToken(sim, {
        grant_type: 'authorization_code',
        code: cb.get('code')!,
        redirect_uri: `${REDIRECT}/`,
      });
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_grant');
    });

    it('quirk: PKCE S256 is verified when a code_challenge was sent', async () => {
      const verifier = 'v'.repeat(50);
      const { createHash } = await import('node:crypto');
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      const cb = await consent(accountingAuthUrl(sim, { code_challenge: challenge, code_challenge_method: 'S256' }));
      const bad = await accountingToken(sim, {
        grant_type: 'authorization_code',
        code: cb.get('code')!,
        redirect_uri: REDIRECT,
        code_verifier: 'w'.repeat(50),
      });
      assert.equal(bad.status, 400);
      const cb2 = await consent(accountingAuthUrl(sim, { code_challenge: challenge, code_challenge_method: 'S256' }));
      assert.equal(
        (
          await accountingToken(sim, {
            grant_type: 'authorization_code',
            code: cb2.get('code')!,
            redirect_uri: REDIRECT,
            code_verifier: verifier,
          })
        ).status,
        200,
      );
    });

    it('quirk: refresh token is single-use (no grace): the old one is invalid_grant at once and counted as reused', async () => {
      const t = await connect();
      const first = await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token });
      assert.equal(first.status, 200);
      const replay = await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token });
      assert.equal(replay.status, 400);
      assert.equal((await json(replay)).error, 'invalid_grant');
      const c = sim.admin.counters();
      assert.equal(c.reusedRefreshTokens, 1);
      assert.equal(c.invalidGrants, 1);
      // Sage Accounting does not kill the family on reuse: the newest refresh token still works.
      const newest = (await json(first)).refresh_token;
      assert.equal((await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: newest })).status, 200);
    });

    it('a client ignoring quirk "refresh token is single-use" fails: two concurrent refreshes with one token, one loses', async () => {
      const t = await connect();
      const results = await Promise.all(
        [1, 2].map(() => accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token })),
      );
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 400]);
    });

    it('quirk: every refresh rotates the refresh token and restarts its 31-day lifetime', async () => {
      let t = await connect();
      const grant = sim.admin.grants('sage-accounting').grants[0]!;
      for (let i = 0; i < 3; i++) {
        sim.admin.clock({ advanceSeconds: 20 * 86400 }); // 60 days in total: only alive because each refresh restarts the window
        const res = await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token });
        assert.equal(res.status, 200);
        const next = await json(res);
        assert.equal(next.refresh_token_expires_in, 2678400);
        assert.notEqual(next.refresh_token, t.refresh_token);
        t = next;
      }
      assert.equal(sim.admin.counters().refreshesByGrant[grant.grantId], 3);
    });

    it('quirk: a refresh token not used within refresh_token_expires_in is invalid_grant', async () => {
      const t = await connect();
      sim.admin.clock({ advanceSeconds: 2678400 + 1 });
      const res = await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token });
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_grant');
    });

    it('quirk: token lifetimes are configurable and each response carries them', async () => {
      sim.admin.settings({ sageAccounting: { accessTokenTtlSeconds: 30, refreshTokenTtlSeconds: 120 } });
      const t = await connect();
      assert.equal(t.expires_in, 30);
      assert.equal(t.refresh_token_expires_in, 120);
    });

    it('quirk: revoke answers {"success":"ok"} and kills the grant: refresh is invalid_grant, API is 401', async () => {
      const t = await connect();
      const res = await fetch(
        sim.env.SAGE_ACCOUNTING_REVOKE_URL!,
        form({
          client_id: sim.apps.sageAccounting.clientId,
          client_secret: sim.apps.sageAccounting.clientSecret,
          token: t.refresh_token,
        }),
      );
      assert.deepEqual(await json(res), { success: 'ok' });
      assert.equal(
        (await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token })).status,
        400,
      );
      assert.equal((await api('/businesses', t.access_token)).status, 401);
    });

    it('quirk: a user revoking the app (admin revoke) makes the next refresh invalid_grant', async () => {
      const t = await connect();
      const user = await userFor(t.requested_by_id);
      const { revoked } = await admin(sim, 'POST', '/revoke', { provider: 'sage-accounting', userId: user.id });
      assert.equal(revoked.length, 1);
      assert.equal(
        (await json(await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token }))).error,
        'invalid_grant',
      );
    });

    it('each consent creates a new grant and a fresh user: tenants are independent', async () => {
      const a = await connect();
      const b = await connect();
      assert.notEqual(a.requested_by_id, b.requested_by_id);
      await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: a.refresh_token });
      const { grants } = sim.admin.grants('sage-accounting');
      assert.equal(grants.length, 2);
      assert.deepEqual(
        grants.map((g) => g.refreshCount),
        [1, 0],
      );
      // A planned consent goes to a chosen user (several grants for one user are possible too).
      await admin(sim, 'POST', '/next-consent', { provider: 'sage-accounting', userId: 'acc-user-1' });
      const c = await connect();
      assert.equal((await userFor(c.requested_by_id)).id, 'acc-user-1');
    });

    it('every issued token is listed for leak scans', async () => {
      const t = await connect();
      const { tokens, codes } = await admin(sim, 'GET', '/issued-tokens');
      assert.ok(tokens.includes(t.access_token) && tokens.includes(t.refresh_token));
      assert.equal(codes.length, 1);
    });
  });

  describe('API v3.1', () => {
    it('quirk: the access token lives 300 s, then 401 AccessTokenVerificationError (an array of errors)', async () => {
      const t = await connect();
      sim.admin.clock({ advanceSeconds: 299 });
      assert.equal((await api('/businesses', t.access_token)).status, 200);
      sim.admin.clock({ advanceSeconds: 2 });
      const res = await api('/contacts', t.access_token);
      assert.equal(res.status, 401);
      const body = await json(res);
      assert.ok(Array.isArray(body));
      assert.equal(body[0].$dataCode, 'AccessTokenVerificationError');
      assert.deepEqual(Object.keys(body[0]).sort(), ['$dataCode', '$message', '$severity', '$source']);
    });

    it('quirk: a missing Authorization header is 401 with a plain {error} object', async () => {
      const res = await fetch(`${sim.env.SAGE_ACCOUNTING_API_URL}/contacts`);
      assert.equal(res.status, 401);
      assert.match((await json(res)).error, /Authorization missing/);
    });

    it('quirk: missing X-Business falls back to the lead business (and the X-Business header is echoed)', async () => {
      const t = await connect();
      const lead = await json(await api('/businesses/lead', t.access_token));
      const businesses = await json(await api('/businesses', t.access_token));
      assert.equal(lead.id, businesses.$items[0].id);
      const res = await api('/contacts', t.access_token);
      assert.equal(res.headers.get('x-business'), lead.id);
      const other = businesses.$items[1].id;
      const res2 = await api('/contacts', t.access_token, { 'X-Business': other });
      assert.equal(res2.headers.get('x-business'), other);
      assert.notDeepEqual((await json(res)).$items, (await json(res2)).$items);
      assert.equal((await api('/businesses', t.access_token)).headers.get('x-business'), null);
    });

    it('quirk: X-Business naming a business the user cannot reach is 403', async () => {
      const t = await connect();
      const { users } = await admin(sim, 'GET', '/users?provider=sage-accounting');
      const foreign = users[0].partitions[0].partitionId;
      const res = await api('/contacts', t.access_token, { 'X-Business': foreign });
      assert.equal(res.status, 403);
      assert.ok(Array.isArray(await json(res)));
    });

    it('quirk: /businesses spells $items_per_page while /contacts spells $itemsPerPage', async () => {
      const t = await connect();
      const b = await json(await api('/businesses', t.access_token));
      assert.ok('$items_per_page' in b && !('$itemsPerPage' in b));
      const c = await json(await api('/contacts', t.access_token));
      assert.ok('$itemsPerPage' in c && !('$items_per_page' in c));
    });

    it('quirk: page past the end returns the last page again', async () => {
      const t = await connect();
      const last = await json(await api('/contacts?items_per_page=20&page=3', t.access_token));
      const beyond = await json(await api('/contacts?items_per_page=20&page=50', t.access_token));
      assert.ok(last.$items.length > 0);
      assert.deepEqual(beyond.$items, last.$items);
      assert.equal(beyond.$next, null);
      assert.equal(beyond.$page, 3);
    });

    it('a client ignoring quirk "page past the end returns the last page" (stopping on an empty page) never stops', async () => {
      const t = await connect();
      let pages = 0;
      for (let page = 1; pages < 10; page++, pages++) {
        const body = await json(await api(`/contacts?items_per_page=20&page=${page}`, t.access_token));
        if (body.$items.length === 0) break;
      }
      assert.equal(pages, 10, 'never saw an empty page: such a client loops forever (and stores duplicates)');
    });

    it("quirk: $next and $back are paths without /v3.1 that keep the caller's params", async () => {
      const t = await connect();
      const p2 = await json(
        await api(
          '/contacts?contact_type_id=CUSTOMER&items_per_page=10&page=2&attributes=name,balance',
          t.access_token,
        ),
      );
      assert.equal(p2.$next, '/contacts?page=3&contact_type_id=CUSTOMER&items_per_page=10&attributes=name,balance');
      assert.equal(p2.$back, '/contacts?page=1&contact_type_id=CUSTOMER&items_per_page=10&attributes=name,balance');
      const first = await json(await api('/contacts', t.access_token));
      assert.equal(first.$back, null);
      assert.equal(first.$next, '/contacts?page=2');
    });

    it('quirk: items_per_page defaults to 20 and may not exceed 200', async () => {
      const t = await connect();
      const body = await json(await api('/contacts', t.access_token));
      assert.equal(body.$itemsPerPage, 20);
      assert.equal(body.$items.length, 20);
      assert.equal((await api('/contacts?items_per_page=201', t.access_token)).status, 400);
      assert.equal((await api('/contacts?items_per_page=200', t.access_token)).status, 200);
    });

    it('quirk: without attributes, items carry only id, displayed_as and $path', async () => {
      const t = await connect();
      const body = await json(await api('/contacts?items_per_page=5', t.access_token));
      for (const item of body.$items) assert.deepEqual(Object.keys(item).sort(), ['$path', 'displayed_as', 'id']);
      const named = await json(
        await api('/contacts?items_per_page=5&attributes=reference,credit_limit', t.access_token),
      );
      assert.deepEqual(Object.keys(named.$items[0]).sort(), [
        '$path',
        'credit_limit',
        'displayed_as',
        'id',
        'reference',
      ]);
      const all = await json(await api('/contacts?items_per_page=5&attributes=all', t.access_token));
      for (const k of [
        'name',
        'reference',
        'email',
        'credit_limit',
        'currency',
        'main_address',
        'contact_types',
        'updated_at',
        'created_at',
      ])
        assert.ok(k in all.$items[0], k);
    });

    it('quirk: balance only with show_balance=true (Swagger: "Use this to display the balance for a contact"), even with attributes=all', async () => {
      const t = await connect();
      const without = await json(await api('/contacts?items_per_page=20&attributes=all', t.access_token));
      for (const item of without.$items) assert.equal('balance' in item, false);
      const named = await json(await api('/contacts?items_per_page=20&attributes=balance,name', t.access_token));
      for (const item of named.$items)
        assert.equal('balance' in item, false, 'naming balance in attributes is not enough');
      const withBalance = await json(
        await api('/contacts?items_per_page=20&attributes=name&show_balance=true', t.access_token),
      );
      for (const item of withBalance.$items) assert.match(item.balance, /^-?\d+\.\d{1,2}$/);
    });

    it('a client that ignores show_balance gets no balance at all', async () => {
      const t = await connect();
      const body = await json(
        await api('/contacts?items_per_page=40&attributes=name,balance,credit_limit', t.access_token),
      );
      assert.ok(body.$items.length > 0);
      assert.ok(body.$items.every((i: Record<string, unknown>) => i.balance === undefined));
    });

    it('quirk: nested entities carry only their base attributes (id, displayed_as, $path) unless nested_attributes asks', async () => {
      const t = await connect();
      const base = await json(
        await api('/contacts?items_per_page=10&attributes=main_address,main_contact_person,currency', t.access_token),
      );
      for (const item of base.$items) {
        for (const k of ['main_address', 'main_contact_person', 'currency'])
          assert.deepEqual(Object.keys(item[k]).sort(), ['$path', 'displayed_as', 'id'], k);
      }
      const named = await json(
        await api(
          '/contacts?items_per_page=10&attributes=main_address,main_contact_person&nested_attributes=city,postal_code,email',
          t.access_token,
        ),
      );
      const a = named.$items[0].main_address;
      assert.deepEqual(Object.keys(a).sort(), ['$path', 'city', 'displayed_as', 'id', 'postal_code']);
      assert.deepEqual(Object.keys(named.$items[0].main_contact_person).sort(), [
        '$path',
        'displayed_as',
        'email',
        'id',
      ]);
      const all = await json(
        await api('/contacts?items_per_page=10&attributes=main_address&nested_attributes=all', t.access_token),
      );
      for (const k of ['address_line_1', 'city', 'postal_code', 'country', 'address_type'])
        assert.ok(k in all.$items[0].main_address, k);
    });

    it('a client that ignores nested_attributes gets no address lines, city, postcode or contact e-mail', async () => {
      const t = await connect();
      const body = await json(
        await api('/contacts?items_per_page=20&attributes=main_address,main_contact_person', t.access_token),
      );
      for (const item of body.$items) {
        assert.equal(item.main_address.address_line_1, undefined);
        assert.equal(item.main_address.city, undefined);
        assert.equal(item.main_contact_person.email, undefined);
      }
    });

    it('quirk: a lapsed subscription answers 401 AuthorizationFailure "No active subscription. (MSE)" with a valid token; /businesses still works', async () => {
      const t = await connect();
      const user = await userFor(t.requested_by_id);
      const [lapsed, other] = user.partitions.map((p: { businessId: string }) => p.businessId);
      await admin(sim, 'POST', '/subscription', { businessId: lapsed, active: false });
      const res = await api('/contacts?items_per_page=5', t.access_token, { 'x-business': lapsed });
      assert.equal(res.status, 401);
      assert.deepEqual(await json(res), [
        {
          $severity: 'error',
          $dataCode: 'AuthorizationFailure',
          $message: 'No active subscription. (MSE)',
          $source: '',
        },
      ]);
      assert.equal(
        (await api('/contacts?items_per_page=5', t.access_token, { 'x-business': other })).status,
        200,
        'other businesses of the same token are fine',
      );
      assert.equal((await api('/businesses', t.access_token)).status, 200);
      const b = await json(await api(`/businesses/${lapsed}`, t.access_token));
      assert.equal(b.subscriptions[0].active, false);
      await admin(sim, 'POST', '/subscription', { businessId: lapsed, active: true });
      assert.equal(
        (await api('/contacts?items_per_page=5', t.access_token, { 'x-business': lapsed })).status,
        200,
        'restored',
      );
    });

    it('a client that treats the lapsed-subscription 401 as an expired token refreshes for nothing (still 401) and burns its refresh token', async () => {
      const t = await connect();
      const user = await userFor(t.requested_by_id);
      const lapsed = user.partitions[0].businessId;
      await admin(sim, 'POST', '/subscription', { businessId: lapsed, active: false });
      const refreshed = await json(
        await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token }),
      );
      assert.ok(refreshed.access_token);
      assert.equal(
        (await api('/contacts', refreshed.access_token, { 'x-business': lapsed })).status,
        401,
        'a fresh token does not help',
      );
      assert.equal(
        (await accountingToken(sim, { grant_type: 'refresh_token', refresh_token: t.refresh_token })).status,
        400,
        'and the old refresh token is gone',
      );
    });

    it('quirk: decimals come as strings (credit_limit "2000.0", balance "123.45")', async () => {
      const t = await connect();
      const body = await json(
        await api('/contacts?items_per_page=40&attributes=credit_limit&show_balance=true', t.access_token),
      );
      for (const item of body.$items) {
        assert.equal(typeof item.balance, 'string');
        assert.match(item.credit_limit, /^-?\d+\.\d{1,2}$/);
      }
      assert.ok(body.$items.some((i: { credit_limit: string }) => /\.0$/.test(i.credit_limit)));
    });

    it('quirk: contacts include vendors unless contact_type_id=CUSTOMER', async () => {
      const t = await connect();
      const everyone = await json(await api('/contacts?items_per_page=200&attributes=contact_types', t.access_token));
      const customers = await json(
        await api('/contacts?items_per_page=200&contact_type_id=CUSTOMER&attributes=contact_types', t.access_token),
      );
      assert.ok(everyone.$total > customers.$total);
      assert.equal(customers.$total, 45);
      assert.ok(everyone.$items.some((i: any) => i.contact_types.every((ct: any) => ct.id === 'VENDOR')));
      assert.ok(customers.$items.every((i: any) => i.contact_types.some((ct: any) => ct.id === 'CUSTOMER')));
    });

    it('quirk: several contacts share the same updated_at second (ties)', async () => {
      const t = await connect();
      const body = await json(await api('/contacts?items_per_page=200&attributes=updated_at', t.access_token));
      const stamps = body.$items.map((i: { updated_at: string }) => i.updated_at);
      assert.ok(new Set(stamps).size < stamps.length, 'expected duplicate updated_at values');
      assert.ok(stamps.every((s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(s)));
    });

    it('quirk: updated_or_created_since is inclusive', async () => {
      const t = await connect();
      const user = await userFor(t.requested_by_id);
      const business = user.partitions[0].partitionId;
      const { updated, at } = await admin(sim, 'POST', '/customers/mutate', {
        provider: 'sage-accounting',
        partitionId: business,
        update: 3,
      });
      const since = encodeURIComponent(at.replace(/\.\d{3}Z$/, 'Z'));
      const body = await json(
        await api(
          `/contacts?contact_type_id=CUSTOMER&updated_or_created_since=${since}&attributes=updated_at`,
          t.access_token,
        ),
      );
      assert.deepEqual(body.$items.map((i: { id: string }) => i.id).sort(), [...updated].sort());
      const later = new Date(Date.parse(at) + 1000).toISOString();
      assert.equal(
        (await json(await api(`/contacts?updated_or_created_since=${encodeURIComponent(later)}`, t.access_token)))
          .$total,
        0,
      );
    });

    it('quirk: deleted_since is exclusive and lists only deleted contacts (id, displayed_as, $path, deleted_at)', async () => {
      const t = await connect();
      const user = await userFor(t.requested_by_id);
      const business = user.partitions[0].partitionId;
      const before = sim.state.now() - 5000;
      const { deleted, at } = await admin(sim, 'POST', '/customers/mutate', {
        provider: 'sage-accounting',
        partitionId: business,
        delete: 2,
      });
      const res = await json(
        await api(`/contacts?deleted_since=${encodeURIComponent(new Date(before).toISOString())}`, t.access_token),
      );
      assert.deepEqual(res.$items.map((i: { id: string }) => i.id).sort(), [...deleted].sort());
      assert.deepEqual(Object.keys(res.$items[0]).sort(), ['$path', 'deleted_at', 'displayed_as', 'id']);
      // Exclusive: deleted_since equal to the deletion time does not list it.
      assert.equal(
        (
          await json(
            await api(`/contacts?deleted_since=${encodeURIComponent(res.$items[0].deleted_at)}`, t.access_token),
          )
        ).$total,
        0,
      );
      // Deleted contacts are gone from the normal list.
      const live = await json(await api('/contacts?items_per_page=200&contact_type_id=CUSTOMER', t.access_token));
      assert.equal(live.$total, 43);
      assert.ok(!live.$items.some((i: { id: string }) => deleted.includes(i.id)));
      const truth = await admin(sim, 'GET', `/truth/customers?provider=sage-accounting&partitionId=${business}`);
      assert.equal(truth.customers.filter((c: { deleted: boolean }) => c.deleted).length, 2);
      assert.ok(at);
    });

    it('quirk: a datetime with an unencoded "+" offset is rejected (it arrives as a space)', async () => {
      const t = await connect();
      assert.equal(
        (await api('/contacts?updated_or_created_since=2024-01-01T00:00:00+01:00', t.access_token)).status,
        400,
      );
      assert.equal(
        (await api('/contacts?updated_or_created_since=2024-01-01T00:00:00%2B01:00', t.access_token)).status,
        200,
      );
    });

    it('data is deterministic from the seed', async () => {
      const a = sim.admin.truth(
        'sage-accounting',
        sim.admin.users('sage-accounting').users[0]!.partitions[0]!.partitionId,
      );
      const other = await startSimulator({ seed: 42, customersPerPartition: 45 });
      try {
        const b = other.admin.truth(
          'sage-accounting',
          other.admin.users('sage-accounting').users[0]!.partitions[0]!.partitionId,
        );
        assert.deepEqual(b, a);
      } finally {
        await other.close();
      }
    });
  });
});
