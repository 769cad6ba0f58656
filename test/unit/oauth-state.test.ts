import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mintState, verifyState } from '../../src/tokens/oauth-state.js';
import { signBody, verifySignature } from '../../src/tokens/notify.js';
import { nonceOfState } from '../../src/connection/machine.js';
import { testConfig } from '../helpers/env.js';

const config = testConfig();
const WF = 'sage-connection:sage-accounting:acme';

test('a minted state verifies, names its workflow, and the workflow reads the same nonce', () => {
  const m = mintState(config, WF, 60_000);
  const v = verifyState(config, m.state);
  assert.ok(v.ok);
  assert.equal(v.ok && v.workflowId, WF);
  assert.equal(nonceOfState(m.state), m.nonce);
  assert.notEqual(mintState(config, WF, 60_000).nonce, m.nonce, 'random per mint');
});

test('a forged state (changed workflow id, nonce or mac) and an expired one are refused', () => {
  const m = mintState(config, WF, 60_000);
  const [wf, nonce, exp, mac] = m.state.split('.') as [string, string, string, string];
  const other = Buffer.from('sage-connection:sage-accounting:evil').toString('base64url');
  assert.deepEqual(verifyState(config, `${other}.${nonce}.${exp}.${mac}`), { ok: false, reason: 'forged' });
  assert.deepEqual(verifyState(config, `${wf}.AAAA${nonce.slice(4)}.${exp}.${mac}`), { ok: false, reason: 'forged' });
  assert.deepEqual(verifyState(config, 'garbage'), { ok: false, reason: 'malformed' });
  const old = mintState(config, WF, 1_000, Date.now() - 10_000);
  assert.deepEqual(verifyState(config, old.state), { ok: false, reason: 'expired' });
});

test('webhook signature: HMAC-SHA256 over the raw body', () => {
  const body = JSON.stringify({ id: 'e1' });
  const sig = signBody('s3cret', body);
  assert.match(sig, /^sha256=[0-9a-f]{64}$/);
  assert.ok(verifySignature('s3cret', body, sig));
  assert.ok(!verifySignature('other', body, sig));
  assert.ok(!verifySignature('s3cret', body + ' ', sig));
});
