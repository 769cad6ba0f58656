/**
 * Issue 12 item 3: the code exchange is idempotent across a real crash. The production worker entry runs in a child
 * process and SIGKILLs itself at `exchange:after-store` (tokens stored, the workflow not told); the retry on another
 * worker must find the exchange by the code's hash instead of presenting the code again.
 * Sage quirk pinned here: an authorization code is single-use (a second presentation is `invalid_grant`, "already used").
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId } from '../../src/messages.js';
import { uniqueName } from '../helpers/env.js';
import { spawnWorker, workerEnvFor } from '../helpers/spawn-worker.js';
import { tokenHarness, type TokenHarness } from '../helpers/token-harness.js';

let h: TokenHarness;
before(async () => {
  h = await tokenHarness({ worker: false });
});
after(async () => h?.close());

test('worker SIGKILLed at exchange:after-store: the code is presented to Sage once, the connection ends connected', async () => {
  const c = h.stack.config;
  const child = spawnWorker(
    workerEnvFor(c, { ...h.sim.env, PUBLIC_BASE_URL: c.PUBLIC_BASE_URL, TEST_CRASH_AT: 'exchange:after-store' }),
  );
  let recovery: Awaited<ReturnType<typeof h.stack.startWorker>> | undefined;
  try {
    await child.ready;
    const tenantId = uniqueName('xkill');
    const before = h.sim.admin.counters().byProvider['sage-accounting'];
    // The whole browser dance; the callback's update waits while the child dies inside the exchange.
    const pending = h.consent(tenantId, 'sage-accounting');
    pending.catch(() => {});
    assert.equal(await child.exited, null, 'killed by a signal');
    assert.match(child.output(), /TEST_CRASH_AT: killing worker process \d+ at exchange:after-store/);
    recovery = await h.stack.startWorker();
    const res = await pending;
    assert.equal(res.status, 200, res.body);

    const after = h.sim.admin.counters().byProvider['sage-accounting'];
    console.log(
      `exchange kill: code exchanges ${after.codeExchanges - before.codeExchanges}, invalid grants ${after.invalidGrants - before.invalidGrants}`,
    );
    assert.equal(after.codeExchanges - before.codeExchanges, 1, 'one successful exchange at Sage');
    assert.equal(after.invalidGrants - before.invalidGrants, 0, 'the single-use code was not presented again');

    const st = await h.status(tenantId, 'sage-accounting');
    assert.equal(st.state, 'connected');
    assert.equal(st.tokenVersion, 1);
    assert.ok(st.partitions.length >= 1);
    // The exchange is recorded by a hash, never the code itself.
    const { codes } = h.sim.admin.issuedTokens() as { codes: string[] };
    const doc = await h.stack.mongo
      .collection(COLLECTIONS.tokens)
      .findOne({ _id: connectionWorkflowId('sage-accounting', tenantId) } as never);
    assert.match(String(doc?.consentExchangeId), /^[0-9a-f]{64}$/);
    const raw = JSON.stringify(doc);
    assert.deepEqual(
      codes.filter((code) => raw.includes(code)),
      [],
      'no code in the token store',
    );
  } finally {
    if (child.child.exitCode === null && child.child.signalCode === null) child.kill('SIGKILL');
    if (recovery) {
      recovery.worker.shutdown();
      await recovery.done.catch(() => {});
    }
  }
});
