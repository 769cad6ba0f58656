/**
 * Who may call the web server (contract §5, issue 12 items 7–9 and 12), against the real web server (fastify inject),
 * a real worker, the Temporal dev server, FerretDB and the Sage simulator. Hostile callers for every route: anonymous,
 * wrong credential, cross-site (foreign, `null` and missing Origin; Sec-Fetch-Site), forged and replayed CSRF tokens,
 * replayed OAuth states; the codec's CORS; security headers; the /connect rate limit; and what /connect starts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';
import type { LightMyRequestResponse } from 'fastify';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId, disconnectSignal, statusQuery, type Provider } from '../../src/messages.js';
import { CONNECT_RATE_LIMIT } from '../../src/web/security.js';
import { operatorAuth, TEST_OPERATOR_TOKEN, uniqueName } from '../helpers/env.js';
import { tokenHarness, type TokenHarness } from '../helpers/token-harness.js';

let h: TokenHarness;
let ownOrigin: string;
const UI_ORIGIN = 'http://127.0.0.1:8233';
const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const operatorBasic = basic('anyone', TEST_OPERATOR_TOKEN);
const tenant = (p: string) => uniqueName(p).replace(/_/g, '-');

before(async () => {
  h = await tokenHarness({ env: { TEMPORAL_UI_URL: UI_ORIGIN } });
  ownOrigin = new URL(h.stack.config.PUBLIC_BASE_URL).origin;
});
after(async () => {
  await h?.close();
});

/** A browser session: the page's CSRF cookie and the token rendered into its forms. */
async function pageSession(): Promise<{ cookie: string; token: string }> {
  const res = await h.web.inject({ method: 'GET', url: '/connections', headers: operatorBasic });
  assert.equal(res.statusCode, 200, res.body.slice(0, 300));
  const setCookie = [res.headers['set-cookie']].flat().find((c) => c?.startsWith('sage_sync_csrf='));
  assert.ok(setCookie, 'the page sets the CSRF cookie');
  assert.match(setCookie, /HttpOnly/i);
  assert.match(setCookie, /SameSite=Strict/i);
  const token = /name="_csrf" value="([^"]+)"/.exec(res.body)?.[1];
  assert.ok(token, 'the page renders a CSRF token into its forms');
  return { cookie: setCookie.split(';')[0] as string, token };
}

async function startedInput(workflowId: string): Promise<Record<string, unknown>> {
  const history = await h.stack.client.workflow.getHandle(workflowId).fetchHistory();
  const payloads = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
  return decodeFromPayloadsAtIndex(h.stack.client.workflow.options.loadedDataConverter, 0, payloads);
}

async function exists(workflowId: string): Promise<boolean> {
  return h.stack.client.workflow
    .getHandle(workflowId)
    .describe()
    .then(() => true)
    .catch(() => false);
}

const OPERATOR_ROUTES: { method: 'GET' | 'POST'; url: string; body?: string; type?: string }[] = [
  { method: 'GET', url: '/' },
  { method: 'GET', url: '/connections' },
  { method: 'GET', url: '/api/connections' },
  {
    method: 'POST',
    url: '/connections/sage-accounting/nobody/sync-now',
    body: 'mode=full',
    type: 'application/x-www-form-urlencoded',
  },
  {
    method: 'POST',
    url: '/connections/sage-accounting/nobody/disconnect',
    body: 'revoke=true',
    type: 'application/x-www-form-urlencoded',
  },
  { method: 'GET', url: '/connect?tenantId=nobody-anon&provider=sage-accounting' },
  { method: 'POST', url: '/codec/encode', body: '{"payloads":[]}', type: 'application/json' },
  { method: 'POST', url: '/codec/decode', body: '{"payloads":[]}', type: 'application/json' },
  { method: 'GET', url: '/metrics' },
  { method: 'GET', url: '/no-such-route' },
];

const WRONG_CREDENTIALS: [string, Record<string, string>][] = [
  ['no credential', {}],
  ['a wrong Bearer token', { authorization: 'Bearer not-the-operator-token-at-all' }],
  ['the token with a suffix', { authorization: `Bearer ${TEST_OPERATOR_TOKEN}x` }],
  ['a lower-case bearer scheme with a wrong token', { authorization: 'bearer nope' }],
  ['Basic with a wrong password', basic('admin', 'wrong-password')],
  ['Basic with the token as the user name', basic(TEST_OPERATOR_TOKEN, '')],
  ['a malformed Basic header', { authorization: 'Basic !!!' }],
  ['another scheme', { authorization: `Token ${TEST_OPERATOR_TOKEN}` }],
];

test('every operator route answers 401 with a Basic challenge to anonymous and wrong credentials, and changes nothing', async () => {
  for (const r of OPERATOR_ROUTES) {
    for (const [what, headers] of WRONG_CREDENTIALS) {
      const res = await h.web.inject({
        method: r.method,
        url: r.url,
        headers: { ...headers, ...(r.type ? { 'content-type': r.type } : {}) },
        ...(r.body ? { payload: r.body } : {}),
      });
      assert.equal(
        res.statusCode,
        401,
        `${r.method} ${r.url} with ${what}: ${res.statusCode} ${res.body.slice(0, 200)}`,
      );
      assert.match(
        String(res.headers['www-authenticate']),
        /^Basic realm="sage-sync operator"/,
        `${r.method} ${r.url} challenges a browser to log in`,
      );
      assert.ok(!res.body.includes(TEST_OPERATOR_TOKEN), 'the answer never echoes the credential');
    }
  }
  assert.equal(
    await exists(connectionWorkflowId('sage-accounting', 'nobody-anon')),
    false,
    'an anonymous /connect started no workflow',
  );
});

test('the operator credential opens the operator routes: Bearer, or Basic with any user name', async () => {
  for (const headers of [operatorAuth, operatorBasic, basic('', TEST_OPERATOR_TOKEN)]) {
    for (const url of ['/connections', '/api/connections', '/metrics']) {
      const res = await h.web.inject({ method: 'GET', url, headers });
      assert.equal(
        res.statusCode,
        200,
        `${url} with ${headers.authorization.split(' ')[0]}: ${res.body.slice(0, 200)}`,
      );
    }
  }
  const metrics = await h.web.inject({ method: 'GET', url: '/metrics', headers: operatorAuth });
  assert.match(metrics.body, /sage_sync_connections|# HELP/);
});

test('/healthz and /oauth/callback are public', async () => {
  const health = await h.web.inject({ method: 'GET', url: '/healthz' });
  assert.notEqual(health.statusCode, 401);
  assert.equal(JSON.parse(health.body).status, 'ok');
  const callback = await h.web.inject({ method: 'GET', url: '/oauth/callback?code=x&state=not.a.real.state' });
  assert.equal(callback.statusCode, 400, 'a forged state is refused, but not for lack of a credential');
});

test('security headers forbid framing and referrers on operator pages and on the public callback page', async () => {
  for (const [url, headers] of [
    ['/connections', operatorBasic],
    ['/oauth/callback?code=x&state=a.b.c.d', {}],
  ] as const) {
    const res = await h.web.inject({ method: 'GET', url, headers });
    assert.equal(res.headers['x-frame-options'], 'DENY', url);
    assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/, url);
    const formAction =
      /form-action ([^;]+)/.exec(String(res.headers['content-security-policy']))?.[1]?.split(' ') ?? [];
    assert.deepEqual(
      new Set(formAction),
      new Set([
        "'self'",
        ownOrigin,
        new URL(h.stack.config.SAGE_ACCOUNTING_AUTH_URL).origin,
        new URL(h.stack.config.SAGE200_AUTH_URL).origin,
      ]),
      `${url}: forms may lead only to us and Sage's consent pages`,
    );
    assert.equal(
      res.headers['referrer-policy'],
      'same-origin',
      `${url}: no referrer leaves for Sage (and same-origin posts keep their Origin)`,
    );
    assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
  }
});

test('page actions with the browser login: refused cross-site, with a null or missing Origin, or a forged or foreign CSRF token', async () => {
  const t = tenant('act');
  await h.start({ tenantId: t, provider: 'sage-accounting' });
  const url = `/connections/sage-accounting/${t}/disconnect`;
  const session = await pageSession();
  const other = await pageSession();
  const form = (token: string) => `revoke=true&_csrf=${encodeURIComponent(token)}`;
  const post = (headers: Record<string, string>, body: string): Promise<LightMyRequestResponse> =>
    h.web.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...operatorBasic, ...headers },
      payload: body,
    });

  const refused: [string, Record<string, string>, string][] = [
    ['a foreign Origin', { origin: 'https://evil.example', cookie: session.cookie }, form(session.token)],
    ['Origin: null (sandboxed frame, data: URL)', { origin: 'null', cookie: session.cookie }, form(session.token)],
    ['no Origin', { cookie: session.cookie }, form(session.token)],
    [
      'Sec-Fetch-Site: cross-site',
      { origin: ownOrigin, 'sec-fetch-site': 'cross-site', cookie: session.cookie },
      form(session.token),
    ],
    [
      'Sec-Fetch-Site: same-site (a sibling subdomain)',
      { origin: ownOrigin, 'sec-fetch-site': 'same-site', cookie: session.cookie },
      form(session.token),
    ],
    ['no CSRF token', { origin: ownOrigin, cookie: session.cookie }, 'revoke=true'],
    ['a forged CSRF token', { origin: ownOrigin, cookie: session.cookie }, form(`${session.token.slice(0, -4)}AAAA`)],
    ['a token replayed from another session', { origin: ownOrigin, cookie: session.cookie }, form(other.token)],
    ['a token without its cookie', { origin: ownOrigin }, form(session.token)],
    ['a forged cookie', { origin: ownOrigin, cookie: 'sage_sync_csrf=forged.secret' }, form(session.token)],
  ];
  for (const [what, headers, body] of refused) {
    const res = await post(headers, body);
    assert.equal(res.statusCode, 403, `${what}: ${res.statusCode} ${res.body.slice(0, 200)}`);
  }
  const status = await h.status(t, 'sage-accounting');
  assert.equal(status.state, 'awaiting_authorization', 'no refused post reached the workflow');

  const ok = await post(
    { origin: ownOrigin, cookie: session.cookie, 'sec-fetch-site': 'same-origin' },
    form(session.token),
  );
  assert.equal(ok.statusCode, 303, ok.body);
  assert.match(String(ok.headers.location), /done=disconnect_requested/);
  // The same token again (a reload of the page's form) is fine within the session: the cookie binds it, not a counter.
  const result = (await h.stack.client.withDeadline(Date.now() + 60_000, () =>
    h.stack.client.workflow.getHandle(connectionWorkflowId('sage-accounting', t)).result(),
  )) as { state: string };
  assert.equal(result.state, 'disconnected');
});

test('a script with the Bearer credential needs no CSRF token (a browser never attaches a Bearer header on its own)', async () => {
  const t = tenant('bearer');
  await h.start({ tenantId: t, provider: 'sage-accounting' });
  const res = await h.web.inject({
    method: 'POST',
    url: `/connections/sage-accounting/${t}/sync-now`,
    headers: { ...operatorAuth, 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'mode=full',
  });
  assert.equal(res.statusCode, 303);
  await h.stack.client.workflow
    .getHandle(connectionWorkflowId('sage-accounting', t))
    .signal(disconnectSignal, { revoke: false });
});

test('/connect with the browser login needs a same-origin request with the page token; without one it asks first', async () => {
  const t = tenant('link');
  const wf = connectionWorkflowId('sage-accounting', t);
  const url = `/connect?tenantId=${t}&provider=sage-accounting`;
  const session = await pageSession();

  const typed = await h.web.inject({ method: 'GET', url, headers: operatorBasic });
  assert.equal(typed.statusCode, 403, 'a link without a token mints nothing');
  assert.match(typed.body, /Confirm the connection/);
  assert.match(typed.body, /name="_csrf" value="[^"]+"/, 'but offers a button that carries one');
  const forged = await h.web.inject({
    method: 'GET',
    url: `${url}&_csrf=forged-token`,
    headers: { ...operatorBasic, cookie: session.cookie },
  });
  assert.equal(forged.statusCode, 403);
  const crossSite = await h.web.inject({
    method: 'GET',
    url: `${url}&_csrf=${encodeURIComponent(session.token)}`,
    headers: { ...operatorBasic, cookie: session.cookie, 'sec-fetch-site': 'cross-site' },
  });
  assert.equal(crossSite.statusCode, 403, 'a navigation started by another site is refused even with a token');
  assert.doesNotMatch(crossSite.body, /Continue to Sage/, 'and is not offered a button either');
  assert.equal(await exists(wf), false, 'no refused /connect started the workflow');

  const ok = await h.web.inject({
    method: 'GET',
    url: `${url}&_csrf=${encodeURIComponent(session.token)}`,
    headers: { ...operatorBasic, cookie: session.cookie, 'sec-fetch-site': 'same-origin' },
  });
  assert.equal(ok.statusCode, 302, ok.body.slice(0, 300));
  const consent = new URL(String(ok.headers.location));
  assert.ok(consent.searchParams.get('state'), 'redirects to Sage with a fresh state');
  assert.equal(ok.headers['cache-control'], 'no-store', 'the consent link is not cached');
  await h.stack.client.workflow.getHandle(wf).signal(disconnectSignal, { revoke: false });
});

test('a consent link is single use: a replayed ?error= or ?code= state answers 400 and changes nothing', async () => {
  const t = tenant('replay');
  const res = await h.web.inject({
    method: 'GET',
    url: `/connect?tenantId=${t}&provider=sage-accounting`,
    headers: operatorAuth,
  });
  assert.equal(res.statusCode, 302);
  const state = new URL(String(res.headers.location)).searchParams.get('state') as string;
  const denied = await h.web.inject({
    method: 'GET',
    url: `/oauth/callback?error=access_denied&state=${encodeURIComponent(state)}`,
  });
  assert.equal(denied.statusCode, 422, 'the first answer for a state: Sage did not authorize');
  const again = await h.web.inject({
    method: 'GET',
    url: `/oauth/callback?error=access_denied&state=${encodeURIComponent(state)}`,
  });
  assert.equal(again.statusCode, 400, `a replayed ?error= state is refused (contract §5): ${again.body.slice(0, 200)}`);
  const withCode = await h.web.inject({
    method: 'GET',
    url: `/oauth/callback?code=abc&state=${encodeURIComponent(state)}`,
  });
  assert.equal(withCode.statusCode, 400, 'and so is a ?code= for a state already answered');

  // A state consumed by a successful consent, replayed as ?error=, is refused too and leaves the connection connected.
  const t2 = tenant('replay2');
  const done = await h.consent(t2, 'sage-accounting');
  assert.equal(done.status, 200, done.body.slice(0, 300));
  const used = new URL(done.callbackUrl).searchParams.get('state') as string;
  const late = await h.web.inject({
    method: 'GET',
    url: `/oauth/callback?error=access_denied&state=${encodeURIComponent(used)}`,
  });
  assert.equal(late.statusCode, 400);
  assert.equal((await h.status(t2, 'sage-accounting')).state, 'connected');
  for (const id of [t, t2])
    await h.stack.client.workflow
      .getHandle(connectionWorkflowId('sage-accounting', id))
      .signal(disconnectSignal, { revoke: false });
});

test(`/connect is rate-limited (${CONNECT_RATE_LIMIT.max} per ${CONNECT_RATE_LIMIT.timeWindow})`, async () => {
  const codes: number[] = [];
  for (let i = 0; i <= CONNECT_RATE_LIMIT.max; i++) {
    // An invalid tenant id: the limiter counts the request before the handler refuses it, and nothing is started.
    codes.push(
      (
        await h.web.inject({
          method: 'GET',
          url: '/connect?tenantId=bad%20id&provider=sage-accounting',
          headers: operatorAuth,
          remoteAddress: '10.9.9.9',
        })
      ).statusCode,
    );
  }
  assert.deepEqual(codes.slice(0, CONNECT_RATE_LIMIT.max), Array(CONNECT_RATE_LIMIT.max).fill(400));
  assert.equal(codes.at(-1), 429);
  const elsewhere = await h.web.inject({
    method: 'GET',
    url: '/connections',
    headers: operatorAuth,
    remoteAddress: '10.9.9.9',
  });
  assert.equal(elsewhere.statusCode, 200, 'the limit is for /connect only');
});

test('codec CORS: only the Temporal UI origin, preflight without a credential, requests with it', async () => {
  const preflight = (origin: string) =>
    h.web.inject({
      method: 'OPTIONS',
      url: '/codec/decode',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-namespace',
      },
    });
  const ui = await preflight(UI_ORIGIN);
  assert.equal(ui.statusCode, 204, ui.body);
  assert.equal(ui.headers['access-control-allow-origin'], UI_ORIGIN);
  assert.equal(ui.headers['access-control-allow-credentials'], 'true');
  assert.match(String(ui.headers['access-control-allow-headers']), /x-namespace/);
  for (const evil of ['https://evil.example', 'null', 'http://127.0.0.1:8234']) {
    const res = await preflight(evil);
    assert.equal(res.headers['access-control-allow-origin'], undefined, `no CORS grant for ${evil}`);
  }
  const other = await h.web.inject({
    method: 'OPTIONS',
    url: '/connections',
    headers: { origin: UI_ORIGIN, 'access-control-request-method': 'POST' },
  });
  assert.equal(other.statusCode, 401, 'no other route answers a preflight');
  assert.equal(other.headers['access-control-allow-origin'], undefined);

  const body = JSON.stringify({
    payloads: [
      {
        metadata: { encoding: Buffer.from('json/plain').toString('base64') },
        data: Buffer.from('{"secret":"customer data"}').toString('base64'),
      },
    ],
  });
  const call = (op: string, headers: Record<string, string>, payload = body) =>
    h.web.inject({
      method: 'POST',
      url: `/codec/${op}`,
      headers: { 'content-type': 'application/json', ...headers },
      payload,
    });

  const anonymous = await call('decode', { origin: UI_ORIGIN });
  assert.equal(anonymous.statusCode, 401);
  const foreign = await call('encode', { origin: 'https://evil.example', ...operatorBasic });
  assert.equal(foreign.statusCode, 403, 'a page elsewhere cannot use the operator browser login to run the codec');
  const nullOrigin = await call('encode', { origin: 'null', ...operatorBasic });
  assert.equal(nullOrigin.statusCode, 403);

  const encoded = await call('encode', { origin: UI_ORIGIN, ...operatorBasic });
  assert.equal(encoded.statusCode, 200, encoded.body);
  assert.equal(encoded.headers['access-control-allow-origin'], UI_ORIGIN);
  assert.ok(!encoded.body.includes(Buffer.from('{"secret":"customer data"}').toString('base64')), 'encode encrypts');
  const decoded = await call('decode', operatorAuth, encoded.body); // the temporal CLI: --codec-auth "Bearer …", no Origin
  assert.equal(decoded.statusCode, 200, decoded.body);
  assert.deepEqual(JSON.parse(decoded.body), JSON.parse(body));
});

test('/connect for a closed connection restarts it with its last settings (interval, edition), not the defaults', async () => {
  const t = tenant('closed');
  const provider: Provider = 'sage-200';
  const wf = connectionWorkflowId(provider, t);
  await h.start({ tenantId: t, provider, sync: { intervalMinutes: 17 }, sage200: { edition: 'sage200' } });
  await h.stack.client.workflow.getHandle(wf).signal(disconnectSignal, { revoke: false });
  await h.stack.client.withDeadline(Date.now() + 60_000, () => h.stack.client.workflow.getHandle(wf).result());

  const res = await h.web.inject({
    method: 'GET',
    url: `/connect?tenantId=${t}&provider=${provider}`,
    headers: operatorAuth,
  });
  assert.equal(res.statusCode, 302, res.body.slice(0, 300));
  const input = await startedInput(wf);
  assert.deepEqual(input.sync, { intervalMinutes: 17 });
  assert.deepEqual(input.sage200, { edition: 'sage200' }, 'the Standard edition is remembered across re-consent');
  assert.equal((await h.stack.client.workflow.getHandle(wf).query(statusQuery)).state, 'awaiting_authorization');
  await h.stack.client.workflow.getHandle(wf).signal(disconnectSignal, { revoke: false });
});

test('/connect?edition= picks the Sage 200 edition, validated, and refuses to change it under a running connection', async () => {
  const t = tenant('edition');
  const wf = connectionWorkflowId('sage-200', t);
  for (const [query, why] of [
    [`tenantId=${t}&provider=sage-200&edition=sage300`, 'an unknown edition'],
    [`tenantId=${t}&provider=sage-accounting&edition=sage200`, 'an edition for Sage Accounting'],
    [`tenantId=${t}&provider=sage-200&edition=sage200&extra=1`, 'an unknown parameter'],
  ]) {
    const res = await h.web.inject({ method: 'GET', url: `/connect?${query}`, headers: operatorAuth });
    assert.equal(res.statusCode, 400, `${why}: ${res.statusCode}`);
  }
  assert.equal(await exists(wf), false);
  const res = await h.web.inject({
    method: 'GET',
    url: `/connect?tenantId=${t}&provider=sage-200&edition=sage200`,
    headers: operatorAuth,
  });
  assert.equal(res.statusCode, 302, res.body.slice(0, 300));
  assert.deepEqual((await startedInput(wf)).sage200, { edition: 'sage200' });
  // The page's "default" choice sends an empty edition: it keeps what the connection has.
  const again = await h.web.inject({
    method: 'GET',
    url: `/connect?tenantId=${t}&provider=sage-200&edition=`,
    headers: operatorAuth,
  });
  assert.equal(again.statusCode, 302);
  await h.stack.mongo
    .collection(COLLECTIONS.connections)
    .updateOne(
      { _id: wf } as never,
      { $set: { tenantId: t, provider: 'sage-200', state: 'awaiting_authorization', sage200: { edition: 'sage200' } } },
      { upsert: true },
    );
  const change = await h.web.inject({
    method: 'GET',
    url: `/connect?tenantId=${t}&provider=sage-200&edition=sage200extra`,
    headers: operatorAuth,
  });
  assert.equal(
    change.statusCode,
    409,
    'a different edition under a running connection is refused, not silently ignored',
  );
  await h.stack.client.workflow.getHandle(wf).signal(disconnectSignal, { revoke: false });
});

test('the web server will not be built without an operator credential (no accidental open server)', async () => {
  const { buildServer } = await import('../../src/web/server.js');
  const { ConfigError } = await import('../../src/config.js');
  const { createLogger } = await import('../../src/lib/logger.js');
  await assert.rejects(
    buildServer({
      config: { ...h.stack.config, OPERATOR_TOKEN: undefined },
      client: h.stack.client,
      mongo: h.stack.mongo,
      log: createLogger({ level: 'silent' }),
    }),
    (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.variable === 'OPERATOR_TOKEN'),
  );
});
