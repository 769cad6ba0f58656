/**
 * Shared bits of the fault suite: how big each fault run is (short form in `npm test`, full with FAULTS=full), the
 * comparison of what we stored against the simulator's ground truth, and simulator fault rules scoped to a block.
 */
import assert from 'node:assert/strict';
import type { Mongo } from '../../src/lib/mongo.js';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import type { Provider } from '../../src/messages.js';
import type { SimulatorAdmin } from '../../src/simulator/admin.js';
import type { FaultRuleInput } from '../../src/simulator/faults.js';

export const FULL = process.env.FAULTS === 'full';
/** `short` in `npm test`, `full` in `npm run test:faults`. */
export const size = (short: number, full: number) => (FULL ? full : short);

/**
 * Runs `fn` with the simulator's fault rules `faults` in place, and clears them however `fn` ends (all rules, as
 * `clearFaults()` does: a rule left by a failed test must not slow or break the next one).
 */
export async function withFaults<T>(
  admin: Pick<SimulatorAdmin, 'addFaults' | 'clearFaults'>,
  faults: FaultRuleInput | FaultRuleInput[],
  fn: () => Promise<T>,
): Promise<T> {
  admin.addFaults(faults);
  try {
    return await fn();
  } finally {
    admin.clearFaults();
  }
}

export interface TruthCustomer {
  id: string;
  deleted: boolean;
}

export interface TruthReport {
  truthLive: number;
  stored: number;
  /** Live at Sage, missing (or flagged deleted) in MongoDB. */
  lost: string[];
  /** More than one document for one Sage id in this partition. */
  duplicated: string[];
  /** In MongoDB as live but not a customer at Sage (or deleted there) — only checked after a full run. */
  extra: string[];
}

export async function compareWithTruth(
  mongo: Mongo,
  key: { tenantId: string; provider: Provider; partitionId: string },
  truth: TruthCustomer[],
  opts: { checkDeletions?: boolean } = {},
): Promise<TruthReport> {
  const docs = await mongo
    .collection(COLLECTIONS.customers)
    .find(
      { tenantId: key.tenantId, provider: key.provider, partitionId: key.partitionId },
      { projection: { externalId: 1, deleted: 1 } },
    )
    .toArray();
  const byExternal = new Map<string, { deleted: boolean }[]>();
  for (const d of docs) {
    const list = byExternal.get(String(d.externalId)) ?? [];
    list.push({ deleted: d.deleted === true });
    byExternal.set(String(d.externalId), list);
  }
  const live = truth.filter((t) => !t.deleted);
  const lost = live.filter((t) => !(byExternal.get(t.id) ?? []).some((d) => !d.deleted)).map((t) => t.id);
  const duplicated = [...byExternal].filter(([, list]) => list.length > 1).map(([id]) => id);
  const liveIds = new Set(live.map((t) => t.id));
  const extra = opts.checkDeletions
    ? [...byExternal].filter(([id, list]) => !liveIds.has(id) && list.some((d) => !d.deleted)).map(([id]) => id)
    : [];
  return { truthLive: live.length, stored: docs.length, lost, duplicated, extra };
}

/**
 * What every fault run must leave behind, however it went: no refresh token presented twice, the tenant still
 * connected, MongoDB equal to Sage's truth (nothing lost, duplicated, or live that Sage deleted), no sync left running.
 */
export function assertSettled(r: {
  reusedRefreshTokens: number;
  state: string;
  report: TruthReport;
  openSyncs: string[];
}): void {
  assert.equal(r.reusedRefreshTokens, 0, 'reused refresh tokens');
  assert.equal(r.state, 'connected');
  assert.deepEqual(r.report.lost, [], 'customers lost');
  assert.deepEqual(r.report.duplicated, [], 'customers duplicated');
  assert.deepEqual(r.report.extra, [], 'customers deleted at Sage still live here');
  assert.deepEqual(r.openSyncs, [], 'stuck sync workflows');
}

/** One line for test output: what a fault run did to the data. */
export function describeReport(r: TruthReport): string {
  return `truth ${r.truthLive} live, stored ${r.stored}, lost ${r.lost.length}, duplicated ${r.duplicated.length}, extra ${r.extra.length}`;
}
