/**
 * Fault suite: Sage has rotated the refresh token and answered, but the MongoDB-wire server is gone (FAULTS=full: 3
 * minutes; `npm test`: 40 s), and the worker holding the answer is then SIGKILLed. The answer must not be lost: the
 * dying attempt sealed it into its heartbeat details, and the retry on the second worker keeps retrying the store (not
 * Sage) until MongoDB is back. Uses a SEPARATE FerretDB (own ports and data directory) and stops only its ferretdb
 * process; the shared server on 27017 is not touched. Sage quirk pinned here: Sage Accounting refresh tokens are strictly
 * single-use, so presenting the old one again would be a reuse (and burn the grant).
 *
 * Asserted: exactly one rotation at Sage, 0 reused refresh tokens, version 2 stored, still `connected`, and the stored
 * pair works (the next forced refresh gives version 3).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { readTokenDoc } from '../../src/tokens/store.js';
import { size } from '../helpers/faults.js';
import type { FaultWorker } from '../helpers/fault-worker.js';
import {
  assertOneRotationStoredAndWorking,
  consentedTenant,
  heldRefreshWorker,
  startFaultWorkers,
} from '../helpers/refresh-faults.js';
import { separateMongo, type SeparateInfra } from '../helpers/separate-infra.js';
import { tokenHarness, type TokenHarness } from '../helpers/token-harness.js';
import { waitUntil } from '../helpers/wait.js';

const P = 'sage-accounting' as const;
const OUTAGE_MS = size(40_000, 180_000);
let mongo: SeparateInfra & { uri: string };
let h: TokenHarness;
let workers: FaultWorker[] = [];

before(async () => {
  mongo = await separateMongo();
  await mongo.up();
  h = await tokenHarness({ worker: false, env: { MONGODB_URI: mongo.uri } });
  workers = await startFaultWorkers(h, 2);
});
after(async () => {
  for (const w of workers) await w.kill();
  await h?.close().catch(() => {});
  await mongo?.destroy();
});

test(`MongoDB-wire server down for ${OUTAGE_MS / 1000} s right after Sage answered a refresh, the worker holding the answer killed: 0 reused, the new version stored`, async () => {
  const { tenantId, id, handle, before, deps } = await consentedTenant(h, 'refresh-outage');

  // Sage holds the refresh until MongoDB is down, then answers: the answer arrives with nowhere to store it.
  const [hold] = h.sim.admin.addFaults({ provider: P, scope: 'token', kind: 'hold' }).rules;
  const forced = acquireAccessToken(
    deps,
    { tenantId, provider: P },
    { rejectedTokenVersion: 1, deadlineMs: OUTAGE_MS + 240_000 },
  ).then(
    (t) => ({ ok: true as const, t }),
    (err: Error) => ({ ok: false as const, err }),
  );
  const attempt1 = await heldRefreshWorker(h, handle, hold!.id, workers);
  const holder = attempt1.worker;
  assert.ok(holder, `attempt 1 ran on one of our workers (${attempt1.identity})`);
  await mongo.stopFerret();
  const outageStart = Date.now();
  h.sim.admin.clearFaults(hold!.id);
  await waitUntil(
    'Sage to rotate the pair',
    async () => h.sim.admin.counters().byProvider[P].refreshes - before.refreshes >= 1,
    { timeoutMs: 10_000, intervalMs: 250 },
  );
  // The answer is in the worker's hands (and, heartbeats being every ~2 s, sealed in the activity's details): kill it.
  await sleep(6_000);
  await holder.kill();
  const rest = OUTAGE_MS - (Date.now() - outageStart);
  if (rest > 0) await sleep(rest);
  await mongo.up();
  const outageSecs = (Date.now() - outageStart) / 1000;

  const forcedResult = await forced;
  // The caller that asked during the outage may have been refused (it could not read the store); asking again works.
  const current = forcedResult.ok
    ? forcedResult.t
    : await acquireAccessToken(deps, { tenantId, provider: P }, { deadlineMs: 240_000 });
  const stored = await readTokenDoc(h.stack.mongo, id);
  const counters = h.sim.admin.counters().byProvider[P];
  const st = await h.status(tenantId, P);
  console.log(
    `[faults] refresh answer during a ${outageSecs.toFixed(0)} s MongoDB outage, holder killed: forced ${forcedResult.ok ? `ok v${forcedResult.t.tokenVersion}` : `refused (${forcedResult.err.name})`}; refreshes at Sage ${counters.refreshes - before.refreshes}, reused ${counters.reusedRefreshTokens - before.reusedRefreshTokens}; stored v${stored?.version}; state ${st.state}`,
  );
  assert.equal(stored?.version, 2, 'the rotated pair was stored');
  assert.equal(current.tokenVersion, 2);
  await assertOneRotationStoredAndWorking(h, tenantId, before);
});
