/**
 * Secrets never reach the logs: tokens, authorization codes, client secrets, subscription keys and Authorization headers
 * are redacted in structured fields (at any depth we log), in free-text messages, in string fields that quote an HTTP
 * body or URL, in errors (message, stack, cause, extra properties) and in child-logger bindings. Each case logs through
 * the real pino logger into memory and searches the raw output for the secret.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, REDACTED, redactText } from '../../src/lib/logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const log = createLogger({ level: 'trace', destination });
  return {
    log,
    lines,
    text: () => lines.join('\n'),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const SECRETS = {
  access: 'AT-3f9c2a7e81d4b6',
  refresh: 'RT-7b1e55c09a3f42',
  code: 'AC-90c1d7e2f3a4b5',
  clientSecret: 'CS-1a2b3c4d5e6f70',
  subscription: 'SK-5d4c3b2a1f0e99',
  jwt: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBhcnQ',
  state: 'st-88ad0c9e1f2b3a',
};

function assertClean(text: string, ...secrets: string[]) {
  for (const s of secrets.length ? secrets : Object.values(SECRETS))
    assert.ok(!text.includes(s), `secret ${s} leaked into: ${text}`);
}

test('structured token, code and secret fields are redacted at every depth we log', () => {
  const { log, text, records } = capture();
  log.info(
    {
      access_token: SECRETS.access,
      refresh_token: SECRETS.refresh,
      code: SECRETS.code,
      client_secret: SECRETS.clientSecret,
    },
    'top level',
  );
  log.info({ tokens: { accessToken: SECRETS.access, refreshToken: SECRETS.refresh } }, 'one level down');
  log.info(
    { exchange: { response: { body: { access_token: SECRETS.access, id_token: SECRETS.jwt } } } },
    'three levels down',
  );
  log.info({ a: { b: { c: { d: { e: { refresh_token: SECRETS.refresh } } } } } }, 'deeper than the path list');
  log.info({ oauth: { state: SECRETS.state, code: SECRETS.code } }, 'callback');
  assertClean(text());
  assert.equal(records()[0]?.access_token, REDACTED, 'the field stays, with a visible placeholder');
});

test('Authorization, cookie and subscription-key headers are redacted in request and response objects', () => {
  const { log, text } = capture();
  log.info(
    { headers: { Authorization: `Bearer ${SECRETS.access}`, 'ocp-apim-subscription-key': SECRETS.subscription } },
    'request',
  );
  log.info(
    { req: { headers: { authorization: `Bearer ${SECRETS.access}`, cookie: `sid=${SECRETS.state}` } } },
    'incoming',
  );
  log.info(
    {
      request: {
        options: {
          headers: { Authorization: `Basic ${Buffer.from(`id:${SECRETS.clientSecret}`).toString('base64')}` },
        },
      },
    },
    'outgoing',
  );
  assertClean(text());
  assert.ok(!text().includes(Buffer.from(`id:${SECRETS.clientSecret}`).toString('base64')), 'basic credentials leaked');
});

test('free-text messages, printf arguments and string fields quoting a body or URL are scrubbed', () => {
  const { log, text } = capture();
  log.warn(
    `token call failed: {"access_token":"${SECRETS.access}","refresh_token":"${SECRETS.refresh}","token_type":"bearer"}`,
  );
  log.info('calling Sage with Authorization: Bearer %s', SECRETS.access);
  log.info(`redirected to https://app.example/oauth/callback?code=${SECRETS.code}&state=${SECRETS.state}&country=GB`);
  log.info(
    `token request body grant_type=refresh_token&refresh_token=${SECRETS.refresh}&client_secret=${SECRETS.clientSecret}`,
  );
  log.info(
    { body: `{"refresh_token": "${SECRETS.refresh}"}`, url: `https://x/cb?code=${SECRETS.code}` },
    'string fields',
  );
  log.info({ sdk: true, detail: `id token ${SECRETS.jwt}` }, 'jwt in text');
  assertClean(text());
  assert.match(text(), /country=GB/, 'non-secret parts of the text survive');
});

test('errors: message, stack, cause and extra properties are scrubbed', () => {
  const { log, text } = capture();
  const cause = new Error(`upstream said refresh_token=${SECRETS.refresh}`);
  const err = new Error(`exchange failed for code=${SECRETS.code}`, { cause }) as Error & Record<string, unknown>;
  err.response = {
    body: `{"access_token":"${SECRETS.access}"}`,
    headers: { authorization: `Bearer ${SECRETS.access}` },
  };
  err.options = {
    headers: { Authorization: `Bearer ${SECRETS.access}` },
    form: { client_secret: SECRETS.clientSecret },
  };
  log.error({ err }, 'refresh failed');
  log.error(err);
  log.error(new Error(`Bearer ${SECRETS.access} rejected`), 'plain error first');
  assertClean(text());
  assert.match(text(), /exchange failed for code=/, 'the error stays readable');
});

test('child logger bindings are redacted too', () => {
  const { log, text } = capture();
  log.child({ refreshToken: SECRETS.refresh, tenantId: 'acme' }).info('child');
  assertClean(text());
  assert.match(text(), /"tenantId":"acme"/);
});

test('connection and worker states stay readable while an OAuth state value is redacted', () => {
  const { log, records } = capture();
  log.info({ state: 'reauthorization_required', reason: 'refresh_token_invalid' }, 'connection state');
  log.info({ state: 'RUNNING' }, 'Worker state changed');
  log.info({ state: SECRETS.state }, 'oauth state');
  const [a, b, c] = records();
  assert.equal(a?.state, 'reauthorization_required');
  assert.equal(a?.reason, 'refresh_token_invalid', 'reason codes such as refresh_token_invalid are not secrets');
  assert.equal(b?.state, 'RUNNING');
  assert.equal(c?.state, REDACTED);
});

test('redactText leaves ordinary text alone', () => {
  const s = 'synced 250 customers for acme (sage-accounting) in 3 pages; reason refresh_token_invalid';
  assert.equal(redactText(s), s);
});
