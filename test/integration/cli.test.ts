/**
 * The operator CLI (`bin/sage-sync.js`) run as a child process against the real servers: Temporal dev server, FerretDB,
 * a real worker, and the Sage simulator standing in for Sage. Checks JSON output and exit codes (0 ok, 2 usage,
 * 3 not found, 4 reauthorization required) through a connection's whole life.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import {
  completeAuthorizationUpdate,
  connectionWorkflowId,
  getAccessTokenUpdate,
  statusQuery,
  type ConnectionStatus,
} from '../../src/messages.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import { callbackArgs, followConsent } from '../helpers/consent.js';
import { testStack, uniqueName, type TestStack } from '../helpers/env.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const CUSTOMERS_PER_PARTITION = 7;

let sim: RunningSimulator;
let stack: TestStack;
let cliEnv: NodeJS.ProcessEnv;
const tenant = uniqueName('cli').replace(/_/g, '-');
const workflowId = connectionWorkflowId('sage-accounting', tenant);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin/sage-sync.js'), ...args],
      { cwd: ROOT, env: cliEnv, timeout: 180_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const json = <T>(r: CliResult): T => {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    assert.fail(`expected JSON on stdout (exit ${r.code}); stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
};

/** Plays the customer: opens the consent URL (the simulator approves at once) and hands code + state to the workflow. */
async function consent(authorizationUrl: string): Promise<ConnectionStatus> {
  // followConsent fails unless the simulated consent page redirects back; callbackArgs unless it carries code and state.
  const back = await followConsent(authorizationUrl);
  assert.equal(`${back.origin}${back.pathname}`, stack.config.redirectUri, 'Sage redirects to our registered callback');
  return stack.client.workflow
    .getHandle(workflowId)
    .executeUpdate(completeAuthorizationUpdate, { args: [callbackArgs(back)] });
}

before(async () => {
  sim = await startSimulator({ customersPerPartition: CUSTOMERS_PER_PARTITION, usersPerProvider: 0 });
  stack = await testStack({ ...sim.env });
  await stack.startWorker();
  cliEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    TEMPORAL_ADDRESS: stack.config.TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE: stack.config.TEMPORAL_NAMESPACE,
    TEMPORAL_TASK_QUEUE: stack.config.TEMPORAL_TASK_QUEUE,
    MONGODB_URI: stack.config.MONGODB_URI,
    MONGODB_DB: stack.config.MONGODB_DB,
    TOKEN_ENCRYPTION_KEY: stack.config.encryptionKey.key.toString('base64'),
    ...sim.env,
  };
});

after(async () => {
  await stack?.client.workflow
    .getHandle(workflowId)
    .terminate('test cleanup')
    .catch(() => {});
  await stack?.close();
  await sim?.close();
});

test('usage errors exit 2 and --help exits 0', async () => {
  const [unknown, badTenant, noProvider, help] = await Promise.all([
    cli('frobnicate'),
    cli('status', 'not a tenant!'),
    cli('connect', tenant),
    cli('--help'),
  ]);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.equal(badTenant.code, 2, badTenant.stderr);
  assert.match(badTenant.stderr, /tenantId must match/);
  assert.equal(noProvider.code, 2, noProvider.stderr);
  assert.match(noProvider.stderr, /--provider/);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit codes:/);
});

test('an unknown tenant is "not found" (exit 3) and list --json is valid JSON', async () => {
  const [status, sync, list] = await Promise.all([
    cli('status', 'nobody-here', '--json'),
    cli('sync-now', 'nobody-here'),
    cli('list', '--json'),
  ]);
  assert.equal(status.code, 3, status.stderr);
  assert.equal(sync.code, 3, sync.stderr);
  assert.equal(list.code, 0, list.stderr);
  assert.ok(Array.isArray(json<{ connections: unknown[] }>(list).connections));
});

test('a connection through its life: connect, consent, status, sync-now --wait, reauthorization, disconnect', async (t) => {
  let authorizationUrl = '';
  let runId = '';
  await t.test('connect starts the workflow and prints a consent URL on Sage (the simulator)', async () => {
    const r = await cli('connect', tenant, '--provider', 'sage-accounting', '--interval', '30', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = json<{ workflowId: string; state: string; authorizationUrl: string }>(r);
    assert.equal(out.workflowId, workflowId);
    assert.equal(out.state, 'awaiting_authorization');
    assert.ok(out.authorizationUrl.startsWith(`${sim.url}/sage-accounting/oauth2/auth/central`), out.authorizationUrl);
    authorizationUrl = out.authorizationUrl;
    runId = (await stack.client.workflow.getHandle(workflowId).describe()).runId;
  });

  await t.test('while awaiting consent, status exits 4 (reauthorization required) and says how to fix it', async () => {
    const r = await cli('status', tenant, '--json');
    assert.equal(r.code, 4, r.stderr);
    assert.equal(json<{ state: string }>(r).state, 'awaiting_authorization');
    assert.match(r.stderr, /needs the customer's consent/);
  });

  await t.test('connect again reuses the running workflow and prints the text form', async () => {
    const r = await cli('connect', tenant, '--provider', 'sage-accounting');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /waiting for consent/);
    assert.match(r.stdout, /\/sage-accounting\/oauth2\/auth\/central\?/);
    assert.equal(
      (await stack.client.workflow.getHandle(workflowId).describe()).runId,
      runId,
      'the same run, not a restart',
    );
  });

  let partitions: string[] = [];
  await t.test('after consent, status is connected with the businesses as partitions (exit 0)', async () => {
    const s = await consent(authorizationUrl);
    assert.equal(s.state, 'connected');
    const r = await cli('status', tenant, '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = json<{ state: string; partitions: { id: string }[]; accessTokenExpiresAt: string; source: string }>(r);
    assert.equal(out.state, 'connected');
    assert.equal(out.source, 'workflow');
    assert.ok(out.partitions.length >= 1);
    assert.ok(Date.parse(out.accessTokenExpiresAt) > Date.now());
    partitions = out.partitions.map((p) => p.id);
    assert.ok(
      !r.stdout.includes('access_token') && !/"(accessToken|refreshToken)"/.test(r.stdout),
      'no token in the output',
    );
  });

  await t.test('sync-now --full --wait follows the run to the end and reports every partition', async () => {
    const r = await cli('sync-now', tenant, '--full', '--wait', '--timeout', '150', '--json');
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const out = json<{
      status: string;
      runs: { partitionId: string; status: string; mode: string; fetched: number; pages: number }[];
    }>(r);
    assert.equal(out.status, 'succeeded');
    assert.deepEqual([...new Set(out.runs.map((x) => x.partitionId))].sort(), [...partitions].sort());
    for (const run of out.runs) {
      assert.equal(run.status, 'succeeded');
      assert.equal(run.mode, 'full');
      assert.equal(run.fetched, CUSTOMERS_PER_PARTITION, `partition ${run.partitionId} fetched every customer`);
      assert.ok(run.pages >= 1);
    }
    const inMongo = await stack.mongo
      .collection(COLLECTIONS.customers)
      .countDocuments({ tenantId: tenant, provider: 'sage-accounting' });
    assert.equal(inMongo, CUSTOMERS_PER_PARTITION * partitions.length);
  });

  await t.test('list --json shows the connection with its customer count', async () => {
    const r = await cli('list', '--json');
    assert.equal(r.code, 0, r.stderr);
    const mine = json<{ connections: { tenantId: string; state: string; customers: number }[] }>(r).connections.find(
      (c) => c.tenantId === tenant,
    );
    assert.ok(mine, 'listed');
    assert.equal(mine.state, 'connected');
    assert.equal(mine.customers, CUSTOMERS_PER_PARTITION * partitions.length);
    const text = await cli('list');
    assert.match(text.stdout, new RegExp(`^${tenant}\\s+sage-accounting\\s+connected`, 'm'));
  });

  await t.test('when the customer revokes access at Sage, status and sync-now exit 4', async () => {
    for (const g of sim.admin.grants('sage-accounting').grants)
      sim.admin.revoke({ provider: 'sage-accounting', grantId: g.grantId });
    const handle = stack.client.workflow.getHandle(workflowId);
    const current = (await handle.query(statusQuery)).tokenVersion ?? 0;
    // The sync's next Sage call would be refused with the revoked token: report it the way the sync does.
    await handle.executeUpdate(getAccessTokenUpdate, { args: [{ rejectedTokenVersion: current }] }).catch(() => {});
    const s = await handle.query(statusQuery);
    assert.equal(s.state, 'reauthorization_required', `state ${s.state} (${s.reason})`);
    const [status, sync] = await Promise.all([cli('status', tenant), cli('sync-now', tenant)]);
    assert.equal(status.code, 4, status.stderr);
    assert.match(status.stdout, /reauthorization_required/);
    assert.equal(sync.code, 4, sync.stderr);
  });

  await t.test(
    'disconnect --no-revoke ends the workflow; afterwards the tenant is disconnected and actions are not found (3)',
    async () => {
      const r = await cli('disconnect', tenant, '--no-revoke', '--json');
      assert.equal(r.code, 0, r.stderr);
      const out = json<{ state: string; revoked: boolean }>(r);
      assert.equal(out.state, 'disconnected');
      assert.equal(out.revoked, false);
      const [status, sync, again] = await Promise.all([
        cli('status', tenant, '--json'),
        cli('sync-now', tenant),
        cli('disconnect', tenant),
      ]);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(json<{ state: string }>(status).state, 'disconnected');
      assert.equal(sync.code, 3, sync.stderr);
      assert.equal(again.code, 3, again.stderr);
      const kept = await stack.mongo.collection(COLLECTIONS.customers).countDocuments({ tenantId: tenant });
      assert.equal(kept, CUSTOMERS_PER_PARTITION * partitions.length, 'synced customers stay');
    },
  );
});
