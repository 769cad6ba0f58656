/**
 * What the refresh fault tests (test/faults/refresh-*.test.ts) share: two or more fault workers (child processes on the
 * prebuilt bundle) on a token harness without an in-process worker, a consented tenant to force a refresh on, and the
 * wait for a forced refresh to be held at Sage with its activity showing which of those workers runs it.
 */
import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import { connectionWorkflowId } from '../../src/messages.js';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { readTokenDoc } from '../../src/tokens/store.js';
import { uniqueName } from './env.js';
import { ensureBundle, startFaultWorker, type FaultWorker } from './fault-worker.js';
import { workerEnvFor } from './spawn-worker.js';
import type { TokenHarness } from './token-harness.js';
import { waitUntil } from './wait.js';

/** `n` fault workers joined to the harness's stack (its simulator and public URL, plus `extra`), once all are ready. */
export async function startFaultWorkers(
  h: TokenHarness,
  n: number,
  extra: Record<string, string> = {},
): Promise<FaultWorker[]> {
  const bundle = await ensureBundle();
  const env = workerEnvFor(h.stack.config, {
    ...h.sim.env,
    PUBLIC_BASE_URL: h.stack.config.PUBLIC_BASE_URL,
    ...extra,
  });
  const workers = Array.from({ length: n }, () => startFaultWorker(env, bundle));
  await Promise.all(workers.map((w) => w.ready));
  return workers;
}

type RefreshCounters = { refreshes: number; reusedRefreshTokens: number };

/**
 * A Sage Accounting tenant (id from `prefix`) connected through the harness's consent flow (the callback must answer
 * 200), with what the refresh tests use next: its connection workflow id and handle, Sage's refresh counters of the
 * provider before the test's forced refresh, and the deps of `acquireAccessToken`.
 */
export async function consentedTenant(h: TokenHarness, prefix: string) {
  const P = 'sage-accounting' as const;
  const tenantId = uniqueName(prefix);
  const res = await h.consent(tenantId, P);
  assert.equal(res.status, 200, res.body);
  const id = connectionWorkflowId(P, tenantId);
  const handle = h.stack.client.workflow.getHandle(id);
  const before = h.sim.admin.counters().byProvider[P];
  const deps = { client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config };
  return { tenantId, id, handle, before, deps };
}

/**
 * After one forced refresh of a Sage Accounting connection at version 1 (counters of its provider `before` it): Sage
 * rotated the pair exactly once and no refresh token was presented twice, version 2 is stored, the connection is still
 * connected, and the stored pair keeps working (the next forced refresh gives version 3, still nothing reused).
 */
export async function assertOneRotationStoredAndWorking(
  h: TokenHarness,
  tenantId: string,
  before: RefreshCounters,
): Promise<void> {
  const P = 'sage-accounting' as const;
  const counters = h.sim.admin.counters().byProvider[P];
  assert.equal(counters.reusedRefreshTokens - before.reusedRefreshTokens, 0, 'no refresh token presented twice');
  assert.equal(counters.refreshes - before.refreshes, 1, 'exactly one rotation at Sage');
  const doc = await readTokenDoc(h.stack.mongo, connectionWorkflowId(P, tenantId));
  assert.equal(doc?.version, 2, 'exactly one new version stored');
  assert.equal((await h.status(tenantId, P)).state, 'connected');
  const deps = { client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config };
  const next = await acquireAccessToken(
    deps,
    { tenantId, provider: P },
    { rejectedTokenVersion: 2, deadlineMs: 120_000 },
  );
  assert.equal(next.tokenVersion, 3, 'the stored pair keeps working');
  assert.equal(h.sim.admin.counters().byProvider[P].reusedRefreshTokens - before.reusedRefreshTokens, 0);
}

/**
 * Waits until the token call is held at Sage by the fault rule `holdId` (60 s) and the connection's `refreshAccessToken`
 * activity names its worker (30 s); returns that identity and which of `workers` it is (undefined: none of them).
 */
export async function heldRefreshWorker(
  h: TokenHarness,
  handle: WorkflowHandle,
  holdId: string,
  workers: FaultWorker[],
): Promise<{ identity: string; worker: FaultWorker | undefined }> {
  await waitUntil(
    'the refresh call to reach Sage',
    async () => h.sim.admin.faults().rules.find((r) => r.id === holdId)!.hits >= 1,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  const attempt1 = await waitUntil(
    'the refresh activity to show its worker',
    async () =>
      (await handle.describe()).raw.pendingActivities?.find(
        (a) => a.activityType?.name === 'refreshAccessToken' && a.lastWorkerIdentity,
      ),
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  const identity = attempt1.lastWorkerIdentity!;
  return { identity, worker: workers.find((w) => identity.startsWith(`${w.pid}@`)) };
}
