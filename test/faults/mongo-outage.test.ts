/**
 * Fault suite: the MongoDB-wire server goes away (FAULTS=full: 60 s; `npm test`: 10 s) in the middle of a full sync
 * while token callers keep asking and a refresh is forced. Uses a SEPARATE FerretDB (own ports and data directory, via
 * scripts/infra) and stops only its ferretdb process; the shared server on 27017 is not touched.
 *
 * Asserted: the sync resumes and succeeds, a refresh asked during the outage is at worst refused as transient (never
 * "reauthorize") and one asked after it works, customers match the simulator's truth (0 lost, 0 duplicated), 0 reused
 * refresh tokens, still connected, nothing stuck, the worker did not crash.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectionWorkflowId, statusQuery } from '../../src/messages.js';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { uniqueName } from '../helpers/env.js';
import { faultSuiteStack } from '../helpers/fault-stack.js';
import { assertSettled, describeReport, size } from '../helpers/faults.js';

const P = 'sage-accounting' as const;
const OUTAGE_MS = size(10_000, 60_000);

const suite = faultSuiteStack({
  separate: 'mongo',
  env: { SAGE_ACCOUNTING_PAGE_SIZE: '25', SYNC_HEARTBEAT_TIMEOUT_SECONDS: '10' },
  worker: true,
});

test(`fault suite: ${OUTAGE_MS / 1000}-second MongoDB-wire outage during a sync and refreshes`, async () => {
  const { sim, stack, infra: mongo, worker } = suite;
  const { tenantId, partitionId } = await suite.connectWeekly(P, {
    prefix: 'outage',
    customersPerPartition: size(1_000, 2_500),
  });
  const handle = stack.client.workflow.getHandle(connectionWorkflowId(P, tenantId));
  const sync = stack.client.workflow.start('syncCustomers', {
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    workflowId: uniqueName('outage-sync'),
    args: [{ tenantId, provider: P, mode: 'full' }],
  });
  const syncHandle = await sync;
  // Cut the server once the sync has written a few pages.
  await suite.checkpointPages(tenantId, syncHandle.workflowId, 3);
  const before = await acquireAccessToken(stack, { tenantId, provider: P });
  await mongo.stopFerret();
  const outageStart = Date.now();
  // During the outage: a forced refresh (as after a 401) and a caller that keeps asking.
  const forced = acquireAccessToken(
    stack,
    { tenantId, provider: P },
    { rejectedTokenVersion: before.tokenVersion, deadlineMs: OUTAGE_MS + 180_000 },
  ).then(
    (t) => ({ ok: true as const, t }),
    (err: Error) => ({ ok: false as const, err }),
  );
  let duringErrors = 0;
  while (Date.now() - outageStart < OUTAGE_MS) {
    await acquireAccessToken(stack, { tenantId, provider: P }, { deadlineMs: 2_000 }).catch(() => duringErrors++);
    await sleep(1_000);
  }
  await mongo.up();
  const outageSecs = (Date.now() - outageStart) / 1000;
  const forcedResult = await forced;
  // After the outage a forced refresh must work again (the one asked during it may have been refused as transient).
  const current = await acquireAccessToken(stack, { tenantId, provider: P }, { deadlineMs: 120_000 });
  const after = await acquireAccessToken(
    stack,
    { tenantId, provider: P },
    { rejectedTokenVersion: current.tokenVersion, deadlineMs: 120_000 },
  );
  const result = (await syncHandle.result()) as {
    status: string;
    partitions: Record<string, { status: string; error?: string }>;
  };
  const { report, ...final } = await suite.finalFullSync('outage-final', { tenantId, provider: P, partitionId });
  const counters = sim.admin.counters();
  const conn = await handle.query(statusQuery);
  const open = await suite.openSyncs();
  console.log(
    `[faults] mongo outage: ${outageSecs.toFixed(0)} s; sync during outage ${result.status}; refresh forced during the outage ${forcedResult.ok ? `ok (v${forcedResult.t.tokenVersion})` : `refused: ${forcedResult.err.name}: ${forcedResult.err.message}`}; after it v${current.tokenVersion} → v${after.tokenVersion}; ${duringErrors} caller errors during the outage; ${counters.refreshes} refreshes, ${counters.reusedRefreshTokens} reused; ${describeReport(report)}; state ${conn.state}; worker crash ${suite.workerCrash ? String(suite.workerCrash) : 'none'}`,
  );
  assert.equal(result.status, 'succeeded', JSON.stringify(result));
  assert.equal(final.status, 'succeeded');
  // During the outage the refresh cannot write its write-ahead marker, so it must not call Sage; the caller may be told
  // "token unavailable" (transient), never "reauthorize".
  if (!forcedResult.ok) assert.doesNotMatch(`${forcedResult.err.name} ${forcedResult.err.message}`, /reauthori/i);
  assert.ok(after.tokenVersion > current.tokenVersion, 'a forced refresh works after the outage');
  assertSettled({ reusedRefreshTokens: counters.reusedRefreshTokens, state: conn.state, report, openSyncs: open });
  assert.equal(suite.workerCrash, null, 'the worker did not crash');
  assert.equal(worker.worker.getState(), 'RUNNING');
});
