/**
 * Fault suite: the worker running a refresh stalls (SIGSTOP, like a long GC pause or a frozen VM) while its token call
 * is held open at Sage, long enough for Temporal to time the attempt out on its heartbeat and start attempt 2 on the
 * other worker. Attempt 2 must find the refresh lease of attempt 1 and wait for it instead of presenting the same
 * refresh token; once Sage answers and the stalled worker wakes up (SIGCONT), it stores the answer and attempt 2 returns
 * that version. Sage quirk pinned here: Sage Accounting refresh tokens are strictly single-use, so a second presentation
 * would burn the grant (the simulator counts it as a reused refresh token).
 *
 * Asserted: Sage saw exactly one refresh call during the stall (attempt 2 never called it), 0 reused refresh tokens,
 * exactly one new version (2), still `connected`, and the rotated pair keeps working.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { readTokenDoc } from '../../src/tokens/store.js';
import type { FaultWorker } from '../helpers/fault-worker.js';
import {
  assertOneRotationStoredAndWorking,
  consentedTenant,
  heldRefreshWorker,
  startFaultWorkers,
} from '../helpers/refresh-faults.js';
import { tokenHarness, type TokenHarness } from '../helpers/token-harness.js';
import { waitUntil } from '../helpers/wait.js';

const P = 'sage-accounting' as const;
let h: TokenHarness;
let workers: FaultWorker[] = [];

before(async () => {
  h = await tokenHarness({ worker: false });
  workers = await startFaultWorkers(h, 2, { FAULT_WORKER_MAX_ACTIVITIES: '1' });
});
after(async () => {
  for (const w of workers) {
    w.child.kill('SIGCONT');
    await w.kill();
  }
  await h?.close();
});

let lastSeen: unknown;

test('a refresh attempt stalled past its heartbeat timeout with its Sage call in flight: attempt 2 waits on the lease, 0 reused tokens', async () => {
  const { tenantId, id, handle, before, deps } = await consentedTenant(h, 'lease-stall');

  // Sage receives the refresh and sits on it until the hold is removed.
  const [hold] = h.sim.admin.addFaults({ provider: P, scope: 'token', kind: 'hold' }).rules;
  const forced = acquireAccessToken(deps, { tenantId, provider: P }, { rejectedTokenVersion: 1, deadlineMs: 240_000 });
  forced.catch(() => {});
  const attempt1 = await heldRefreshWorker(h, handle, hold!.id, workers);
  const stalled = attempt1.worker;
  assert.ok(stalled, `attempt 1 ran on one of our workers (${attempt1.identity})`);
  stalled.child.kill('SIGSTOP');
  const stalledAt = Date.now();
  try {
    // Temporal times attempt 1 out on its heartbeat and starts attempt 2 on the other worker.
    await waitUntil(
      () => `attempt 2 of the refresh; last seen ${JSON.stringify(lastSeen)}`,
      async () => {
        const a = (await handle.describe()).raw.pendingActivities?.find(
          (x) => x.activityType?.name === 'refreshAccessToken',
        );
        lastSeen = {
          attempt: a?.attempt,
          state: a?.state,
          worker: a?.lastWorkerIdentity,
          failure: a?.lastFailure?.message,
          held: h.sim.admin.faults().rules.map((r) => r.hits),
        };
        return a && (a.attempt ?? 0) >= 2 && a.lastWorkerIdentity && !a.lastWorkerIdentity.startsWith(`${stalled.pid}@`)
          ? a
          : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    // Give attempt 2 time to do the wrong thing (present the same refresh token).
    await sleep(4_000);
    const holdNow = h.sim.admin.faults().rules.find((r) => r.id === hold!.id)!;
    console.log(
      `[faults] lease stall: attempt 2 started ${((Date.now() - stalledAt) / 1000).toFixed(1)} s after the stall; token calls held at Sage: ${holdNow.hits}`,
    );
    assert.equal(holdNow.hits, 1, 'attempt 2 did not call Sage while attempt 1 held the lease');
    // Sage answers attempt 1 (rotating the pair), then the stalled worker wakes up and reads that answer.
    h.sim.admin.clearFaults(hold!.id);
    await waitUntil(
      () => `Sage to rotate the pair; last seen ${JSON.stringify(lastSeen)}`,
      async () => h.sim.admin.counters().byProvider[P].refreshes - before.refreshes >= 1,
      { timeoutMs: 10_000, intervalMs: 250 },
    );
  } finally {
    stalled.child.kill('SIGCONT');
  }
  const got = await forced;
  const after = h.sim.admin.counters().byProvider[P];
  const doc = await readTokenDoc(h.stack.mongo, id);
  const st = await h.status(tenantId, P);
  console.log(
    `[faults] lease stall: refreshes at Sage ${after.refreshes - before.refreshes}, reused ${after.reusedRefreshTokens - before.reusedRefreshTokens}, stored v${doc?.version}, state ${st.state}`,
  );
  assert.equal(got.tokenVersion, 2);
  assert.equal(doc?.pendingRefresh, null, 'the lease is gone once the answer is stored');
  assert.equal(st.tokenVersion, 2);
  await assertOneRotationStoredAndWorking(h, tenantId, before);
});
