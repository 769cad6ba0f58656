import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalJson, contentHash } from '../../src/sync/hash.js';
import { advanceWatermark, compareKeys, incrementalSince, maxWatermark } from '../../src/sync/watermark.js';
import { decideMode } from '../../src/sync/plan.js';
import { customerId, quarantineId, storableRaw } from '../../src/sync/documents.js';
import { laterCheckpoint } from '../../src/sync/partition-sync.js';
import { zeroCounts, type Checkpoint } from '../../src/sync/runs.js';

test('content hash ignores key order but sees every value change', () => {
  const a = { id: 'x', name: 'A', nested: { b: 1, a: [1, { z: 1, y: 2 }] } };
  const b = { nested: { a: [1, { y: 2, z: 1 }], b: 1 }, name: 'A', id: 'x' };
  assert.equal(canonicalJson(a), canonicalJson(b));
  assert.equal(contentHash(a), contentHash(b));
  assert.notEqual(contentHash(a), contentHash({ ...a, name: 'B' }));
  assert.notEqual(
    contentHash({ v: '1.0' }),
    contentHash({ v: 1 }),
    'a decimal string and a number are different payloads',
  );
});

test('watermark orders by (updatedAt, id): ties at one second are ordered by id', () => {
  const t = '2024-03-01T10:00:00.000Z';
  assert.equal(compareKeys({ updatedAt: t, id: 'a' }, { updatedAt: t, id: 'b' }), -1);
  assert.equal(compareKeys({ updatedAt: '2024-03-01T10:00:01Z', id: 'a' }, { updatedAt: t, id: 'z' }), 1);
  assert.deepEqual(maxWatermark(null, { updatedAt: t, id: 'a' }), { updatedAt: t, id: 'a' });
  const wm = advanceWatermark(null, [
    { sourceUpdatedAt: new Date(t), externalId: 'b' },
    { sourceUpdatedAt: new Date(t), externalId: 'c' },
    { sourceUpdatedAt: new Date('2024-03-01T09:00:00Z'), externalId: 'z' },
  ]);
  assert.deepEqual(wm, { updatedAt: t, id: 'c' });
});

test('incremental lower bound = watermark minus the overlap window (inclusive re-read of ties and skew)', () => {
  assert.equal(incrementalSince(null, 300), null);
  assert.equal(
    incrementalSince({ updatedAt: '2024-03-01T10:05:00.000Z', id: 'x' }, 300)?.toISOString(),
    '2024-03-01T10:00:00.000Z',
  );
});

test('mode: first sync full; full on request, on flag, when reconciliation is due; else incremental', () => {
  const now = new Date('2024-03-02T00:00:00Z');
  const base = { fullSyncRequested: false, now, fullSyncEveryHours: 24 };
  assert.equal(decideMode({ ...base, lastFullSyncAt: null }).mode, 'full');
  assert.equal(
    decideMode({ ...base, lastFullSyncAt: null, requested: 'incremental' }).mode,
    'full',
    'first sync is full whatever is asked',
  );
  const recent = new Date('2024-03-01T12:00:00Z');
  assert.equal(decideMode({ ...base, lastFullSyncAt: recent }).mode, 'incremental');
  assert.equal(decideMode({ ...base, lastFullSyncAt: recent, requested: 'full' }).mode, 'full');
  assert.equal(decideMode({ ...base, lastFullSyncAt: recent, fullSyncRequested: true }).reason, 'full_sync_requested');
  assert.equal(decideMode({ ...base, lastFullSyncAt: new Date('2024-03-01T00:00:00Z') }).reason, 'reconciliation_due');
});

test('ids follow contract §4; quarantine ids differ per payload; `$` keys become storable', () => {
  const k = { tenantId: 'acme', provider: 'sage-200' as const, partitionId: '123' };
  assert.equal(customerId(k, '27825'), 'sage-200:acme:123:27825');
  const q1 = quarantineId(k, '27825', { id: 27825, name: 1 });
  const q2 = quarantineId(k, '27825', { id: 27825, name: 2 });
  assert.ok(q1.startsWith('sage-200:acme:123:27825:'));
  assert.notEqual(q1, q2);
  assert.ok(quarantineId(k, null, {}).startsWith('sage-200:acme:123:?:'));
  assert.deepEqual(storableRaw({ $path: '/x', a: [{ $path: '/y', 'b.c': 1 }] }), {
    '\uFF04path': '/x',
    a: [{ '\uFF04path': '/y', 'b\uFF0Ec': 1 }],
  });
});

test('resume picks the further checkpoint (heartbeats are throttled; sync_runs is written every page)', () => {
  const cp = (phase: Checkpoint['phase'], pages: number): Checkpoint => ({
    phase,
    cursor: null,
    counts: { ...zeroCounts(), pages },
    watermark: null,
    serverStartedAt: null,
    deletionPages: 0,
  });
  assert.equal(laterCheckpoint(cp('customers', 3), cp('customers', 5))?.counts.pages, 5);
  assert.equal(laterCheckpoint(cp('deletions', 3), cp('customers', 5))?.phase, 'deletions');
  assert.equal(laterCheckpoint(null, cp('customers', 1))?.counts.pages, 1);
});
