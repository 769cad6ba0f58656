/**
 * PKCE (S256) through the real web routes, a real worker on Temporal, FerretDB and the simulator over HTTP: the consent
 * URL carries an S256 challenge, the exchange presents the matching verifier (re-derived from the state, never stored),
 * a stolen code without the verifier is refused at the simulator, and the verifier is nowhere in the workflow history
 * (raw as stored, and every payload decoded), MongoDB or the worker's logs. Sage 200 runs with SAGE200_PKCE=S256 here
 * (its default is off; token-consent.test.ts covers the default).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { Payload } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import { createLogger } from '../../src/lib/logger.js';
import { connectionWorkflowId, statusQuery, type Provider } from '../../src/messages.js';
import { s256Challenge, verifierForState } from '../../src/tokens/pkce.js';
import { createWorker } from '../../src/worker.js';
import { operatorAuth, uniqueName } from '../helpers/env.js';
import { tokenHarness, type TokenHarness } from '../helpers/token-harness.js';

let h: TokenHarness;
const logLines: string[] = [];
let stopWorker: () => Promise<void>;

before(async () => {
  h = await tokenHarness({ worker: false, env: { SAGE200_PKCE: 'S256' } });
  // The production worker, with a logger at trace level that we can read.
  const log = createLogger({
    level: 'trace',
    destination: new Writable({ write: (chunk, _enc, cb) => (logLines.push(String(chunk)), cb()) }),
  });
  const connection = await NativeConnection.connect({ address: h.stack.config.TEMPORAL_ADDRESS });
  const worker = await createWorker({
    config: h.stack.config,
    connection,
    client: h.stack.client,
    mongo: h.stack.mongo,
    log,
  });
  const done = worker.run();
  stopWorker = async () => {
    worker.shutdown();
    await done.catch(() => {});
    await connection.close();
  };
});
after(async () => {
  await stopWorker?.();
  await h?.close();
});

/** /connect → the simulator's consent page; returns the authorize URL and the callback URL (code, state). */
async function consentUpTo(tenantId: string, provider: Provider) {
  const res = await h.web.inject({
    method: 'GET',
    url: `/connect?tenantId=${tenantId}&provider=${provider}`,
    headers: operatorAuth,
  });
  assert.equal(res.statusCode, 302, res.body);
  const authorizeUrl = new URL(String(res.headers.location));
  const callbackUrl = new URL(await h.followConsent(authorizeUrl.toString()));
  return {
    authorizeUrl,
    callbackUrl,
    code: callbackUrl.searchParams.get('code')!,
    state: callbackUrl.searchParams.get('state')!,
  };
}

function tokenEndpoint(provider: Provider): { url: string; clientId: string; clientSecret: string } {
  return provider === 'sage-accounting'
    ? {
        url: h.sim.env.SAGE_ACCOUNTING_TOKEN_URL!,
        clientId: h.sim.apps.sageAccounting.clientId,
        clientSecret: h.sim.apps.sageAccounting.clientSecret,
      }
    : {
        url: h.sim.env.SAGE200_TOKEN_URL!,
        clientId: h.sim.apps.sage200.clientId,
        clientSecret: h.sim.apps.sage200.clientSecret,
      };
}

/** An attacker holding the code (and even our client credentials) but not the verifier. */
async function exchangeAsAttacker(
  provider: Provider,
  code: string,
  codeVerifier?: string,
): Promise<{ status: number; error?: string }> {
  const t = tokenEndpoint(provider);
  const form: Record<string, string> = {
    grant_type: 'authorization_code',
    client_id: t.clientId,
    client_secret: t.clientSecret,
    code,
    redirect_uri: h.stack.config.redirectUri,
  };
  if (codeVerifier) form.code_verifier = codeVerifier;
  const res = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(form),
  });
  const body = (await res.json().catch(() => ({}))) as { error?: string };
  return { status: res.status, ...(body.error ? { error: body.error } : {}) };
}

/** Every payload in a history, decoded by the codec (the stored history is encrypted, so a raw search alone proves little). */
async function decodedPayloads(history: unknown): Promise<string[]> {
  const found: Payload[] = [];
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object') return;
    if (v instanceof Uint8Array) return;
    const o = v as Record<string, unknown>;
    if (o.metadata && typeof o.metadata === 'object' && o.data instanceof Uint8Array) found.push(o as Payload);
    for (const x of Object.values(o)) walk(x);
  };
  walk(history);
  assert.ok(found.length > 0, 'the history has payloads');
  const codecs = h.stack.client.options.loadedDataConverter.payloadCodecs;
  let decoded = found;
  for (const c of [...codecs].reverse()) decoded = await c.decode(decoded);
  return decoded.map((p) => Buffer.from(p.data ?? new Uint8Array()).toString('utf8'));
}

for (const provider of ['sage-accounting', 'sage-200'] as const) {
  test(`${provider}: S256 challenge in the consent URL; a stolen code without the verifier is refused; our exchange presents it and connects`, async () => {
    const tenantId = uniqueName('pk');
    const { authorizeUrl, callbackUrl, code, state } = await consentUpTo(tenantId, provider);
    assert.equal(authorizeUrl.searchParams.get('code_challenge_method'), 'S256');
    const challenge = authorizeUrl.searchParams.get('code_challenge');
    assert.match(challenge ?? '', /^[A-Za-z0-9_-]{43}$/);
    // The challenge is the S256 of the verifier derived from this very state.
    const verifier = verifierForState(h.stack.config, state);
    assert.equal(s256Challenge(verifier), challenge);
    assert.ok(!authorizeUrl.toString().includes(verifier), 'only the challenge is in the URL');

    const before = h.sim.admin.counters().byProvider[provider];
    // Stolen code: no verifier, a guessed one, the challenge itself → invalid_grant at the simulator.
    for (const guess of [undefined, 'A'.repeat(43), challenge!]) {
      const r = await exchangeAsAttacker(provider, code, guess);
      assert.equal(r.status, provider === 'sage-accounting' ? 400 : 403);
      assert.equal(r.error, 'invalid_grant');
    }
    assert.equal(
      h.sim.admin.counters().byProvider[provider].codeExchanges,
      before.codeExchanges,
      'the attacker exchanged nothing',
    );

    // The real callback: the exchange activity re-derives the verifier and connects.
    const ok = await h.callback(callbackUrl.toString());
    assert.equal(ok.status, 200, ok.body);
    const st = await h.status(tenantId, provider);
    assert.equal(st.state, 'connected');
    assert.equal(h.sim.admin.counters().byProvider[provider].codeExchanges, before.codeExchanges + 1);
    // A replayed callback changes nothing (the state is single-use) and the code is not presented again.
    assert.equal((await h.callback(callbackUrl.toString())).status, 400);
    assert.equal((await h.status(tenantId, provider)).tokenVersion, st.tokenVersion);
    assert.equal(h.sim.admin.counters().byProvider[provider].codeExchanges, before.codeExchanges + 1);
    // The code is spent now, verifier or not.
    assert.equal((await exchangeAsAttacker(provider, code, verifier)).error, 'invalid_grant');
  });
}

test('the verifier is in no workflow history (raw or decoded), MongoDB document or worker log; the challenge is', async () => {
  const tenantId = uniqueName('pkh');
  const { callbackUrl, state, authorizeUrl } = await consentUpTo(tenantId, 'sage-accounting');
  assert.equal((await h.callback(callbackUrl.toString())).status, 200);
  const id = connectionWorkflowId('sage-accounting', tenantId);
  assert.equal((await h.stack.client.workflow.getHandle(id).query(statusQuery)).state, 'connected');
  const verifier = verifierForState(h.stack.config, state);
  const challenge = authorizeUrl.searchParams.get('code_challenge')!;

  const history = await h.stack.client.workflow.getHandle(id).fetchHistory();
  const raw = JSON.stringify(history);
  const decoded = (await decodedPayloads(history)).join('\n');
  // The search is meaningful: the decoded history holds the state the verifier comes from, and the challenge.
  assert.ok(decoded.includes(state), 'the completeAuthorization input (with the state) is in the decoded history');
  assert.ok(decoded.includes(challenge), 'the minted consent URL (with the challenge) is in the decoded history');
  for (const hay of [raw, Buffer.from(raw).toString('latin1'), decoded])
    assert.ok(!hay.includes(verifier), 'verifier in history');

  const docs: string[] = [];
  for (const c of await h.stack.mongo.db.listCollections().toArray()) {
    for (const d of await h.stack.mongo.db.collection(c.name).find({}).toArray()) docs.push(JSON.stringify(d));
  }
  assert.ok(docs.length > 0);
  assert.ok(!docs.join('\n').includes(verifier), 'verifier in MongoDB');

  const logs = logLines.join('');
  assert.match(logs, /authorization code exchanged/, 'the worker log was captured');
  assert.ok(!logs.includes(verifier), 'verifier in the worker log');
});
