/**
 * Webhook calls keep the signed body on the receiver's host (issue 12 item 10): no redirects, `https:` only outside
 * development, no loopback/private/link-local receivers (the literal and the resolved address) unless
 * NOTIFY_WEBHOOK_ALLOW_PRIVATE. Real HTTP servers on loopback stand in for receivers.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config.js';
import {
  isNonPublicAddress,
  postWebhook,
  STRICT_WEBHOOK_POLICY,
  webhookPolicy,
  WebhookDeliveryError,
  WebhookRefusedError,
  webhookUrlProblem,
  type WebhookPolicy,
} from '../../src/tokens/notify.js';

const KEY = Buffer.alloc(32, 3).toString('base64');
const DEV_PRIVATE: WebhookPolicy = { allowHttp: true, allowPrivate: true };
const DEV_PUBLIC_ONLY: WebhookPolicy = { allowHttp: true, allowPrivate: false };
const event = { id: 'evt-1', type: 'connection.reauthorization_required' };

const hits: { server: string; body: string; headers: http.IncomingHttpHeaders }[] = [];
function server(name: string, handler: (res: http.ServerResponse) => void) {
  const s = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      hits.push({ server: name, body, headers: req.headers });
      handler(res);
    });
  });
  return s;
}
const target = server('target', (res) => res.writeHead(204).end());
let targetUrl = '';
const redirector = server('redirector', (res) => res.writeHead(307, { location: targetUrl }).end());
const ok = server('ok', (res) => res.writeHead(200).end());
const urlOf = (s: http.Server, path = '/hook') => `http://127.0.0.1:${(s.address() as AddressInfo).port}${path}`;

before(async () => {
  for (const s of [target, redirector, ok]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  targetUrl = urlOf(target, '/stolen');
});
after(async () => {
  for (const s of [target, redirector, ok]) await new Promise<void>((r) => s.close(() => r()));
});

test('non-public addresses are recognised, public ones are not', () => {
  for (const a of [
    '127.0.0.1',
    '127.8.9.10',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '224.0.0.1',
  ]) {
    assert.equal(isNonPublicAddress(a), true, a);
  }
  for (const a of ['8.8.8.8', '172.32.0.1', '1.1.1.1', '2606:4700:4700::1111'])
    assert.equal(isNonPublicAddress(a), false, a);
});

test('the policy: http only outside production; private receivers only with NOTIFY_WEBHOOK_ALLOW_PRIVATE', () => {
  assert.deepEqual(
    webhookPolicy(parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, NODE_ENV: 'production' })),
    STRICT_WEBHOOK_POLICY,
  );
  assert.deepEqual(
    webhookPolicy(parseConfig({ TOKEN_ENCRYPTION_KEY: KEY })),
    DEV_PUBLIC_ONLY,
    'private receivers are refused by default, also in development',
  );
  assert.equal(
    webhookPolicy(parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, NOTIFY_WEBHOOK_ALLOW_PRIVATE: 'true' })).allowPrivate,
    true,
  );
  assert.throws(
    () => parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, NOTIFY_WEBHOOK_ALLOW_PRIVATE: 'yes' }),
    /NOTIFY_WEBHOOK_ALLOW_PRIVATE/,
  );
});

test('URLs refused before any connection: http in production, literal private addresses, credentials, other schemes', () => {
  const refused: [string, WebhookPolicy][] = [
    ['http://hooks.example.com/x', STRICT_WEBHOOK_POLICY],
    ['ftp://hooks.example.com/x', DEV_PRIVATE],
    ['https://127.0.0.1/x', STRICT_WEBHOOK_POLICY],
    ['https://10.0.0.5/x', STRICT_WEBHOOK_POLICY],
    ['https://169.254.169.254/latest/meta-data', STRICT_WEBHOOK_POLICY],
    ['https://[::1]/x', STRICT_WEBHOOK_POLICY],
    ['https://[fe80::1]/x', STRICT_WEBHOOK_POLICY],
    ['https://[::ffff:127.0.0.1]/x', STRICT_WEBHOOK_POLICY],
    ['https://0x7f000001/x', STRICT_WEBHOOK_POLICY], // WHATWG URL turns this into 127.0.0.1
    ['https://user:pw@hooks.example.com/x', STRICT_WEBHOOK_POLICY],
  ];
  for (const [url, policy] of refused) assert.ok(webhookUrlProblem(url, policy), `${url} must be refused`);
  assert.equal(webhookUrlProblem('https://hooks.example.com/x', STRICT_WEBHOOK_POLICY), null);
  assert.equal(webhookUrlProblem('http://127.0.0.1:9/x', DEV_PRIVATE), null);
});

test('postWebhook refuses a loopback receiver (literal or by name) without sending anything', async () => {
  const before = hits.length;
  await assert.rejects(postWebhook(urlOf(ok), 'secret', event, DEV_PUBLIC_ONLY), WebhookRefusedError);
  const byName = urlOf(ok).replace('127.0.0.1', 'localhost'); // the name is fine; what it resolves to is not
  await assert.rejects(
    postWebhook(byName, 'secret', event, DEV_PUBLIC_ONLY),
    (err: unknown) => err instanceof WebhookRefusedError && /resolves to/.test((err as Error).message),
  );
  await assert.rejects(
    postWebhook(urlOf(ok).replace('http:', 'https:'), 'secret', event, STRICT_WEBHOOK_POLICY),
    WebhookRefusedError,
  );
  await assert.rejects(postWebhook(urlOf(ok), 'secret', event, STRICT_WEBHOOK_POLICY), /https only/);
  assert.equal(hits.length, before, 'no receiver saw a request');
});

test('postWebhook does not follow a redirect: the signed body never reaches the Location', async () => {
  hits.length = 0;
  await assert.rejects(
    postWebhook(urlOf(redirector), 'secret', event, DEV_PRIVATE),
    (err: unknown) => err instanceof WebhookDeliveryError && /307/.test((err as Error).message),
  );
  assert.deepEqual(
    hits.map((x) => x.server),
    ['redirector'],
    'only the configured host was called',
  );
});

test('an allowed receiver gets the signed event', async () => {
  hits.length = 0;
  assert.equal(await postWebhook(urlOf(ok), 'secret', event, DEV_PRIVATE), 200);
  assert.equal(hits.length, 1);
  assert.equal(hits[0]?.headers['x-sage-sync-event-id'], 'evt-1');
  assert.match(String(hits[0]?.headers['x-sage-sync-signature']), /^sha256=[0-9a-f]{64}$/);
});
