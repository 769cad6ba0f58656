/**
 * Fault suite: Sage misbehaving. While the simulator injects storms — 429 (with and without Retry-After), 500/502/503,
 * dropped connections and added latency — on the data API and on the token endpoint, a connected tenant refreshes
 * (forced by rejecting the current token version, as a 401 would) and syncs (full, then incremental after changes).
 * FAULTS=full runs six rounds over a bigger partition (same fault rates: about one page in three hits a fault).
 *
 * Asserted: every sync run ends succeeded, customers match the simulator's truth (0 lost, 0 duplicated, none live that
 * Sage deleted), 0 reused refresh tokens, the tenant still connected, 0 stuck workflows.
 * Sage quirks pinned: Sage Accounting sends no Retry-After on its concurrency 429s; Sage 200 (APIM) says "Try again in N
 * seconds" in the body; a dropped connection gives the client no status at all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectionWorkflowId, statusQuery } from '../../src/messages.js';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { waitForStatus } from '../helpers/consent.js';
import { uniqueName } from '../helpers/env.js';
import { faultSuiteStack } from '../helpers/fault-stack.js';
import { assertSettled, describeReport, size } from '../helpers/faults.js';

const P = 'sage-accounting' as const;
const ROUNDS = size(1, 6);
const CUSTOMERS = size(500, 3_000);

// Small pages: many requests per run, so the storm has something to hit.
const suite = faultSuiteStack({ env: { SAGE_ACCOUNTING_PAGE_SIZE: '25' }, worker: true });

/** Faults every round is guaranteed to get (fixed counts), on top of the random storm: the storm-happened check is exact. */
const GUARANTEED_FAULTS_PER_ROUND = 6;

function storm(rate: number) {
  const { sim } = suite;
  sim.admin.clearFaults();
  sim.admin.addFaults([
    // Fixed-count faults first, spread over the run with `after`, so every round meets at least this many.
    { provider: P, scope: 'api', kind: 'status', status: 429, count: 2, after: 3, retryAfterSeconds: null },
    { provider: P, scope: 'api', kind: 'status', status: 503, count: 2, after: 8, retryAfterSeconds: 1 },
    { provider: P, scope: 'api', kind: 'drop', count: 1, after: 12 },
    { provider: P, scope: 'token', kind: 'status', status: 503, count: 1 },
    { provider: P, scope: 'api', kind: 'status', status: 429, probability: rate, retryAfterSeconds: null },
    { provider: P, scope: 'api', kind: 'status', status: 429, probability: rate / 2, retryAfterSeconds: 1 },
    { provider: P, scope: 'api', kind: 'status', status: 500, probability: rate / 2 },
    { provider: P, scope: 'api', kind: 'status', status: 502, probability: rate / 4 },
    { provider: P, scope: 'api', kind: 'status', status: 503, probability: rate / 4, retryAfterSeconds: 1 },
    { provider: P, scope: 'api', kind: 'drop', probability: rate / 4 },
    { provider: P, scope: 'api', kind: 'latency', latencyMs: 300, probability: 0.3 },
    { provider: P, scope: 'token', kind: 'status', status: 503, probability: rate },
    { provider: P, scope: 'token', kind: 'status', status: 429, probability: rate / 2 },
    { provider: P, scope: 'token', kind: 'drop', probability: rate / 4 },
    { provider: P, scope: 'token', kind: 'latency', latencyMs: 500, probability: 0.3 },
  ]);
}

test(`fault suite: simulator storms (429, 5xx, dropped connections, latency) over ${ROUNDS} rounds`, async () => {
  const { sim, stack } = suite;
  const { tenantId, partitionId } = await suite.connectWeekly(P, { prefix: 'storm', customersPerPartition: CUSTOMERS });
  const handle = stack.client.workflow.getHandle(connectionWorkflowId(P, tenantId));
  // The schedule's first sync starts right after consent; let it finish before the storm so every run below is ours.
  await waitForStatus(
    stack.client,
    handle.workflowId,
    (st) => st.lastSync[partitionId]?.status === 'succeeded',
    120_000,
  );
  const runs: { mode: string; status: string; error?: string }[] = [];
  const tokenErrors: string[] = [];
  let forcedRefreshes = 0;
  for (let round = 0; round < ROUNDS; round++) {
    storm(0.15);
    // A few forced refreshes through the storm on the token endpoint (what a 401 makes a caller do).
    for (let i = 0; i < 3; i++) {
      try {
        const t = await acquireAccessToken(stack, { tenantId, provider: P });
        await acquireAccessToken(
          stack,
          { tenantId, provider: P },
          { rejectedTokenVersion: t.tokenVersion, deadlineMs: 120_000 },
        );
        forcedRefreshes++;
      } catch (err) {
        tokenErrors.push(String((err as Error).message).slice(0, 200));
      }
    }
    const mode = round === 0 ? 'full' : round % 2 === 0 ? 'full' : 'incremental';
    const result = (await stack.client.workflow.execute('syncCustomers', {
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      workflowId: uniqueName(`storm-sync-${round}`),
      args: [{ tenantId, provider: P, mode }],
      workflowExecutionTimeout: '10 minutes',
    })) as { status: string; partitions: Record<string, { status: string; error?: string }> };
    const s = result.partitions[partitionId];
    runs.push({ mode, status: s?.status ?? result.status, ...(s?.error ? { error: s.error } : {}) });
    // Sage changes between runs (no faults on the admin API).
    sim.admin.mutate({ provider: P, partitionId, update: 20, delete: 5, create: 10 });
    await sleep(1_100); // the next run must see the changes strictly after its watermark second
  }
  // A last full run without faults settles deletions; then compare with the truth.
  const counters = sim.admin.counters();
  sim.admin.clearFaults();
  const { report, ...last } = await suite.finalFullSync('storm-final', { tenantId, provider: P, partitionId });
  const conn = await handle.query(statusQuery);
  const open = await suite.openSyncs();
  console.log(
    `[faults] storms: ${counters.faultsInjected} faults injected (${counters.rateLimited} 429s, ${counters.droppedConnections} drops); runs ${runs.map((r) => `${r.mode}:${r.status}`).join(', ')}; ${forcedRefreshes} forced refreshes ok, ${tokenErrors.length} failed; ${counters.refreshes} refreshes, ${counters.reusedRefreshTokens} reused; ${describeReport(report)}; state ${conn.state}`,
  );
  assert.ok(
    counters.faultsInjected >= GUARANTEED_FAULTS_PER_ROUND * ROUNDS,
    `the storm really happened (${counters.faultsInjected} faults)`,
  );
  assert.deepEqual(
    runs.filter((r) => r.status !== 'succeeded'),
    [],
    'every run under the storm succeeded (retries absorb the faults)',
  );
  assert.equal(last.status, 'succeeded');
  assert.deepEqual(tokenErrors, [], 'token callers got a token through the storm');
  assertSettled({ reusedRefreshTokens: counters.reusedRefreshTokens, state: conn.state, report, openSyncs: open });
});
