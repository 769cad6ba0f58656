/**
 * Fixtures of the messages tests send or feed to the machine: one `PartitionSyncSummary` of a succeeded partition run
 * (as a `syncReport` signal carries it), with the fields a test cares about given as overrides.
 */
import type { PartitionSyncSummary } from '../../src/messages.js';

/** A succeeded full run of one partition that wrote one new customer, finished now (unless overridden). */
export function succeededSummary(overrides: Partial<PartitionSyncSummary> = {}): PartitionSyncSummary {
  return {
    finishedAt: new Date().toISOString(),
    status: 'succeeded',
    mode: 'full',
    fetched: 1,
    upserted: 1,
    modified: 0,
    deleted: 0,
    quarantined: 0,
    ...overrides,
  };
}
