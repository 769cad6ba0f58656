/**
 * Crash safety of the refresh, for real: the production worker entry runs in a child process and SIGKILLs itself at a
 * named point of the rotation (TEST_CRASH_AT, honoured only with NODE_ENV=test). Another worker then picks the work up.
 * Sage quirk pinned here: Sage Accounting refresh tokens are strictly single-use (no grace window), and the simulator
 * counts every presentation of a rotated-away token as a reuse.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Worker } from '@temporalio/worker';
import { connectionWorkflowId } from '../../src/messages.js';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { ReauthorizationRequiredError } from '../../src/errors.js';
import { uniqueName } from '../helpers/env.js';
import { spawnWorker, workerEnvFor } from '../helpers/spawn-worker.js';
import { tokenHarness, type TokenHarness } from '../helpers/token-harness.js';

let h: TokenHarness;
const logs: string[] = [];
before(async () => {
  h = await tokenHarness({ worker: false });
});
after(async () => h?.close());

function childEnv(crashAt: string): Record<string, string> {
  const c = h.stack.config;
  return workerEnvFor(c, {
    ...h.sim.env,
    LOG_LEVEL: 'debug',
    PUBLIC_BASE_URL: c.PUBLIC_BASE_URL,
    TEST_CRASH_AT: crashAt,
  });
}

async function waitForOutput(out: () => string, re: RegExp, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!re.test(out())) {
    if (Date.now() > deadline) throw new Error(`child worker never printed ${re}: ${out().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Consents with a child worker that will die at `point` on the first refresh; returns the tenant and the dying refresh. */
async function killDuringRefresh(point: string) {
  const child = spawnWorker(childEnv(point));
  try {
    await waitForOutput(child.output, /worker started/);
    const tenantId = uniqueName(point.replace(/\W/g, '-'));
    const res = await h.consent(tenantId, 'sage-accounting');
    assert.equal(res.status, 200, res.body);
    const before = h.sim.admin.counters().byProvider['sage-accounting'];
    // Force a refresh (version 1 rejected); the child kills itself inside it.
    const pending = acquireAccessToken(
      { client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config },
      { tenantId, provider: 'sage-accounting' },
      { rejectedTokenVersion: 1 },
    );
    pending.catch(() => {});
    const code = await child.exited;
    assert.equal(code, null, 'killed by a signal');
    assert.match(child.output(), new RegExp(`TEST_CRASH_AT: killing worker process \\d+ at ${point}`));
    return { tenantId, before, pending, output: child.output() };
  } finally {
    logs.push(child.output());
    if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
  }
}

async function withRecoveryWorker<T>(fn: () => Promise<T>): Promise<T> {
  const { worker, done } = (await h.stack.startWorker()) as { worker: Worker; done: Promise<void> };
  try {
    return await fn();
  } finally {
    worker.shutdown();
    await done.catch(() => {});
  }
}

for (const point of ['refresh:before-sage', 'refresh:after-store'] as const) {
  test(`worker SIGKILLed at ${point}: 0 reused refresh tokens, still connected, one rotation at Sage`, async () => {
    const k = await killDuringRefresh(point);
    await withRecoveryWorker(async () => {
      const lease = await k.pending;
      assert.equal(lease.tokenVersion, 2);
      const after = h.sim.admin.counters().byProvider['sage-accounting'];
      console.log(
        `${point}: refreshes at Sage ${after.refreshes - k.before.refreshes}, reused refresh tokens ${after.reusedRefreshTokens - k.before.reusedRefreshTokens}`,
      );
      assert.equal(after.reusedRefreshTokens - k.before.reusedRefreshTokens, 0, 'no refresh token presented twice');
      assert.equal(after.refreshes - k.before.refreshes, 1, 'exactly one rotation at Sage');
      const st = await h.status(k.tenantId, 'sage-accounting');
      assert.equal(st.state, 'connected');
      assert.equal(st.tokenVersion, 2);
      // and the rotated pair keeps working
      const next = await acquireAccessToken(
        { client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config },
        { tenantId: k.tenantId, provider: 'sage-accounting' },
        { rejectedTokenVersion: 2 },
      );
      assert.equal(next.tokenVersion, 3);
    });
  });
}

test('worker SIGKILLed after Sage answered but before the store (the one window no client can close): reported as refresh_response_lost', async () => {
  // Sage rotated the pair and the answer died with the process; Sage (strict single use) rejects the old token. We do not
  // pretend otherwise: the connection asks for reauthorization at once with a reason that says what happened.
  const k = await killDuringRefresh('refresh:after-sage');
  await withRecoveryWorker(async () => {
    await assert.rejects(
      k.pending,
      (err: unknown) => err instanceof ReauthorizationRequiredError && err.reason === 'refresh_response_lost',
    );
    const st = await h.status(k.tenantId, 'sage-accounting');
    assert.equal(st.state, 'reauthorization_required');
    assert.equal(st.reason, 'refresh_response_lost');
    assert.equal(
      h.sim.admin.counters().byProvider['sage-accounting'].reusedRefreshTokens - k.before.reusedRefreshTokens,
      1,
    );
  });
});

test('worker logs at debug level contain no issued token or code', () => {
  const { tokens, codes } = h.sim.admin.issuedTokens() as { tokens: string[]; codes: string[] };
  const all = logs.join('\n');
  assert.ok(all.length > 1000, 'logs were captured');
  assert.deepEqual(
    [...tokens, ...codes].filter((t) => t.length >= 16 && all.includes(t)),
    [],
  );
  assert.equal(connectionWorkflowId('sage-accounting', 'x'), 'sage-connection:sage-accounting:x');
});
