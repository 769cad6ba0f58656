/**
 * `npm start` (scripts/start.ts) as a user runs it, in demo mode: it reuses the running Temporal and MongoDB-wire servers,
 * starts the simulator, worker and web server, prints where to go, lets a visitor connect a tenant through the real
 * consent redirect, and on SIGINT stops its children and leaves the reused servers running. In demo mode it generates the
 * operator credential into a git-ignored file and prints how to log in; the operator routes need it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { DEV_OPERATOR_TOKEN_FILE } from '../../src/config.js';
import { TEST_ENCRYPTION_KEY, testConfig, uniqueName } from '../helpers/env.js';
import { freePort, portOpen } from '../helpers/ports.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
let proc: ChildProcess | undefined;
const config = testConfig();

after(async () => {
  if (proc && proc.exitCode === null) proc.kill('SIGKILL');
  const mongo = await MongoClient.connect(config.MONGODB_URI);
  await mongo
    .db(config.MONGODB_DB)
    .dropDatabase()
    .catch(() => {});
  await mongo.close();
});

test('npm start runs the demo stack, prints the URLs, and Ctrl-C stops only what it started', async () => {
  const [port, simPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${port}`;
  const { MONGODB_DB, TEMPORAL_TASK_QUEUE, TEMPORAL_ADDRESS, MONGODB_URI } = config;
  // A clean environment with no Sage credentials: demo mode.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TEMPORAL_ADDRESS,
    MONGODB_URI,
    MONGODB_DB,
    TEMPORAL_TASK_QUEUE,
    TOKEN_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    PORT: String(port),
    PUBLIC_BASE_URL: base,
    SIM_PORT: String(simPort),
    WORKER_METRICS_PORT: String(metricsPort),
  };
  proc = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc?.once('exit', (code) => r(code)));

  const deadline = Date.now() + 240_000;
  while (!out.includes('Press Ctrl-C')) {
    assert.ok(proc.exitCode === null, `npm start exited early (${proc.exitCode}):\n${out}`);
    assert.ok(Date.now() < deadline, `no banner within 240 s:\n${out}`);
    await sleep(500);
  }
  assert.match(out, /reusing the running Temporal/);
  assert.match(out, /demo mode/);
  assert.match(out, new RegExp(`Connections page\\s+${base}/connections`));
  assert.match(out, /Temporal UI\s+http:\/\/127\.0\.0\.1:8233/);
  assert.match(out, /1\. Open .*\n\s+2\. /, 'a two-line walkthrough');
  assert.match(out, /Log in\s+any user name, password = the contents of \.local\/operator-token/, 'says how to log in');

  // The generated credential: in the git-ignored file, never printed itself.
  const token = readFileSync(DEV_OPERATOR_TOKEN_FILE, 'utf8').trim();
  assert.ok(token.length >= 16);
  assert.ok(!out.includes(token), 'the credential is not printed to the terminal');
  const basic = { authorization: `Basic ${Buffer.from(`operator:${token}`).toString('base64')}` };
  const bearer = { authorization: `Bearer ${token}` };

  assert.equal((await fetch(`${base}/healthz`)).status, 200, '/healthz is public');
  assert.equal((await fetch(`${base}/connections`)).status, 401, 'the connections page needs the operator');
  assert.equal((await fetch(`${base}/connections`, { headers: basic })).status, 200, 'a browser logs in with Basic');
  // The worker's metrics carry tenant labels: the operator credential guards them too.
  assert.equal(
    (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status,
    401,
    'worker metrics need the operator',
  );
  const workerMetrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { headers: bearer })).text();
  assert.match(workerMetrics, /sage_sync_process_cpu_seconds_total/, 'worker serves our metrics');
  assert.match(workerMetrics, /^temporal_/m, 'and the SDK runtime metrics');

  // A visitor connects a tenant: /connect → simulated Sage consent → /oauth/callback, all through the started processes.
  const tenant = uniqueName('start').replace(/_/g, '-');
  assert.equal(
    (await fetch(`${base}/connect?tenantId=${tenant}&provider=sage-accounting`, { redirect: 'manual' })).status,
    401,
    'minting a consent link needs the operator',
  );
  const page = await fetch(`${base}/connect?tenantId=${tenant}&provider=sage-accounting`, { headers: bearer });
  assert.equal(page.status, 200, await page.clone().text());
  assert.match(await page.text(), /Connected to Sage/);
  // Leave nothing running in the shared namespace.
  const disconnected = await fetch(`${base}/connections/sage-accounting/${tenant}/disconnect`, {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'revoke=true',
    redirect: 'manual',
  });
  assert.equal(disconnected.status, 303);

  proc.kill('SIGINT');
  const code = await Promise.race([exited, sleep(90_000, 'timeout' as const, { ref: false })]);
  assert.equal(code, 0, `npm start did not stop cleanly:\n${out.slice(-3000)}`);
  assert.match(out, /\[start\] stopped/);
  for (const p of [port, simPort, metricsPort])
    assert.equal(await portOpen(p), false, `port ${p} is closed after Ctrl-C`);
  const [host = '127.0.0.1', tport = '7233'] = TEMPORAL_ADDRESS.split(':');
  assert.equal(await portOpen(Number(tport), host), true, 'the reused Temporal server is left running');
  assert.equal(
    await portOpen(Number(new URL(MONGODB_URI).port || 27017)),
    true,
    'the reused MongoDB server is left running',
  );
});
