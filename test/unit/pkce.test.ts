/**
 * PKCE (RFC 7636, S256) with a derived, never stored verifier: deterministic per consent state, different per state,
 * from its own HKDF key; the S256 transform checked against RFC 7636 Appendix B; the providers put the challenge in the
 * consent URL and the verifier in the code exchange, and the simulator (real HTTP) accepts only the matching verifier.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseConfig, type Config } from '../../src/config.js';
import { deriveKey } from '../../src/lib/crypto.js';
import { SageOAuthError } from '../../src/errors.js';
import { oauthFor } from '../../src/providers/oauth.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import { mintState } from '../../src/tokens/oauth-state.js';
import {
  challengeForState,
  deriveVerifier,
  pkceEnabled,
  PkceStateError,
  s256Challenge,
  verifierForState,
} from '../../src/tokens/pkce.js';

const KEY = Buffer.alloc(32, 11);
const OLD = Buffer.alloc(32, 5);
const WF = 'sage-connection:sage-accounting:acme';
const cfg = (env: Record<string, string> = {}): Config =>
  parseConfig({ NODE_ENV: 'test', TOKEN_ENCRYPTION_KEY: KEY.toString('base64'), ...env } as never);

test('RFC 7636 Appendix B: S256 of the example verifier is the example challenge', () => {
  assert.equal(
    s256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'),
    'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  );
});

test('the verifier is deterministic per state, different per state, 43 unreserved characters', () => {
  const config = cfg();
  const a = mintState(config, WF, 60_000);
  const b = mintState(config, WF, 60_000);
  const va = verifierForState(config, a.state);
  assert.equal(verifierForState(config, a.state), va, 'same state → same verifier');
  assert.equal(challengeForState(config, a.state), s256Challenge(va));
  assert.notEqual(verifierForState(config, b.state), va, 'another state → another verifier');
  assert.notEqual(challengeForState(config, b.state), challengeForState(config, a.state));
  // RFC 7636 §4.1: 43..128 of [A-Z a-z 0-9 - . _ ~]; ours is 32 HMAC bytes in base64url = 43.
  assert.match(va, /^[A-Za-z0-9_-]{43}$/);
  assert.match(challengeForState(config, a.state), /^[A-Za-z0-9_-]{43}$/);
  // Neither the nonce nor the state is the verifier, and the challenge is not the verifier.
  assert.ok(!a.state.includes(va) && challengeForState(config, a.state) !== va);
  // Bound to the connection too: the same nonce under another workflow id gives another verifier.
  assert.notEqual(deriveVerifier(KEY, 'sage-connection:sage-accounting:other', a.nonce), va);
});

test('the verifier key is its own HKDF purpose, and depends on the master key', () => {
  const k = deriveKey(KEY, 'pkceVerifier');
  assert.ok(!k.equals(KEY));
  assert.ok(!k.equals(deriveKey(KEY, 'tokenStore')) && !k.equals(deriveKey(KEY, 'payloadCodec')));
  assert.notEqual(deriveVerifier(KEY, WF, 'n1'), deriveVerifier(OLD, WF, 'n1'));
});

test('a key rotated between consent and exchange still gives the verifier the consent was minted with', () => {
  const before = parseConfig({ NODE_ENV: 'test', TOKEN_ENCRYPTION_KEY: OLD.toString('base64') } as never);
  const minted = mintState(before, WF, 60_000);
  const challenge = challengeForState(before, minted.state);
  const after = cfg({ TOKEN_ENCRYPTION_OLD_KEYS: OLD.toString('base64') });
  assert.equal(s256Challenge(verifierForState(after, minted.state)), challenge);
});

test('a forged or malformed state yields no verifier; an expired but authentic one does (the exchange may run late)', () => {
  const config = cfg();
  const m = mintState(config, WF, 60_000);
  const [wf, nonce, exp] = m.state.split('.');
  assert.throws(() => verifierForState(config, `${wf}.${nonce}.${exp}.AAAAAAAAAAAAAAAAAAAAAA`), PkceStateError);
  assert.throws(() => verifierForState(config, 'garbage'), PkceStateError);
  const expired = mintState(config, WF, 1_000, Date.now() - 60_000);
  assert.match(verifierForState(config, expired.state), /^[A-Za-z0-9_-]{43}$/);
});

test('per-provider setting: Sage Accounting S256 by default, Sage 200 off by default (unconfirmed for Sage ID), both switchable', () => {
  assert.equal(pkceEnabled(cfg(), 'sage-accounting'), true);
  assert.equal(pkceEnabled(cfg(), 'sage-200'), false);
  assert.equal(pkceEnabled(cfg({ SAGE_ACCOUNTING_PKCE: 'off' }), 'sage-accounting'), false);
  assert.equal(pkceEnabled(cfg({ SAGE200_PKCE: 'S256' }), 'sage-200'), true);
  assert.throws(() => cfg({ SAGE200_PKCE: 'plain' }), /SAGE200_PKCE/);
});

let sim: RunningSimulator;
before(async () => {
  sim = await startSimulator({ usersPerProvider: 0, customersPerPartition: 1 });
});
after(async () => sim?.close());

for (const provider of ['sage-accounting', 'sage-200'] as const) {
  test(`${provider}: the consent URL carries the S256 challenge; only the matching verifier exchanges the code (simulator over HTTP)`, async () => {
    const config = cfg({ ...sim.env, SAGE200_PKCE: 'S256' });
    const oauth = oauthFor(provider);
    const consent = async (state: string) => {
      const url = new URL(oauth.authorizationUrl(config, { state, codeChallenge: challengeForState(config, state) }));
      assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
      assert.equal(url.searchParams.get('code_challenge'), challengeForState(config, state));
      assert.ok(!url.toString().includes(verifierForState(config, state)), 'the verifier is not in the URL');
      const res = await fetch(url, { redirect: 'manual' });
      assert.equal(res.status, 302);
      return new URL(res.headers.get('location')!).searchParams.get('code')!;
    };
    const state = mintState(config, `sage-connection:${provider}:t1`, 60_000).state;
    const code = await consent(state);
    const other = mintState(config, `sage-connection:${provider}:t1`, 60_000).state;
    // Stolen code: without a verifier, or with another state's verifier → invalid_grant.
    for (const codeVerifier of [undefined, verifierForState(config, other)]) {
      await assert.rejects(
        oauth.exchangeCode(config, { code, ...(codeVerifier ? { codeVerifier } : {}) }),
        (err: unknown) => {
          assert.ok(err instanceof SageOAuthError);
          assert.equal(err.error, 'invalid_grant');
          return true;
        },
      );
    }
    const tokens = await oauth.exchangeCode(config, { code, codeVerifier: verifierForState(config, state) });
    assert.ok(tokens.accessToken);
    // Without PKCE the URL carries no challenge (the setting is off, or an older consent).
    const plain = new URL(oauth.authorizationUrl(config, { state }));
    assert.equal(plain.searchParams.get('code_challenge'), null);
    assert.equal(plain.searchParams.get('code_challenge_method'), null);
  });
}
