/**
 * The worker's /metrics carries tenant ids in labels, so it is an operator route: loopback unless configured otherwise,
 * and with OPERATOR_TOKEN set it answers 401 to anonymous, wrong-token and cross-scheme callers.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { startWorkerMetricsServer } from '../../src/lib/metrics-server.js';
import { parseConfig } from '../../src/config.js';

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));
const TOKEN = 'metrics-operator-token-0123456789';

test('with OPERATOR_TOKEN set: anonymous, forged and wrong credentials get 401; Bearer and Basic password get 200', async () => {
  const server = await startWorkerMetricsServer({ port: 0, operatorToken: TOKEN });
  servers.push(server);
  const addr = server.address() as AddressInfo;
  assert.equal(addr.address, '127.0.0.1', 'loopback by default');
  const url = `http://127.0.0.1:${addr.port}/metrics`;
  const anon = await fetch(url);
  assert.equal(anon.status, 401);
  assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic /);
  assert.doesNotMatch(await anon.text(), /sage_sync_/);
  assert.equal((await fetch(url, { headers: { authorization: 'Bearer wrong-token-wrong-token-wrong' } })).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}x` } })).status, 401);
  assert.equal(
    (await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${TOKEN}:x`).toString('base64')}` } })).status,
    401,
    'token as user name is not the password',
  );
  assert.equal((await fetch(url, { headers: { authorization: `Token ${TOKEN}` } })).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.equal(
    (await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`prometheus:${TOKEN}`).toString('base64')}` } }))
      .status,
    200,
  );
});

test('WORKER_METRICS_HOST defaults to loopback and is configurable', () => {
  const base = { TOKEN_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64') };
  assert.equal(parseConfig({ ...base }).WORKER_METRICS_HOST, '127.0.0.1');
  assert.equal(parseConfig({ ...base, WORKER_METRICS_HOST: '0.0.0.0' }).WORKER_METRICS_HOST, '0.0.0.0');
});
