/**
 * Pure parts of the change sequence (src/sync/change-seq.ts, src/sync/announce.ts, the `changes` CLI and the
 * per-connection webhook lookup): the horizon, the announced range, and input parsing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { webhookUrlFromInput } from '../../src/activities/changes.js';
import { parseSince } from '../../src/cli/commands/changes.js';
import { CliExit } from '../../src/cli/exit-codes.js';
import { totalChanges } from '../../src/sync/announce.js';
import { horizonOf, nextAnnouncement } from '../../src/sync/change-seq.js';

test('horizon: the counter when no partition is writing', () => {
  assert.equal(horizonOf(0, []), 0);
  assert.equal(horizonOf(2000, []), 2000);
});

test('horizon: one below the lowest open reservation, never above the counter', () => {
  assert.equal(horizonOf(3000, [1001, 2001]), 1000);
  assert.equal(horizonOf(3000, [2001, 1001]), 1000, 'order of the reservations does not matter');
  assert.equal(
    horizonOf(500, [1001]),
    500,
    'a reservation above the counter (opened, nothing allocated yet) does not raise it',
  );
  assert.equal(horizonOf(3000, [1]), 0, 'a reservation opened on a fresh counter holds everything back');
});

test('announcement: continues from the last announced toSeq, so consecutive events tile the sequence', () => {
  assert.deepEqual(nextAnnouncement(0, 1000), { fromSeq: 1, toSeq: 1000 });
  assert.deepEqual(nextAnnouncement(1000, 2500), { fromSeq: 1001, toSeq: 2500 });
  // Horizon held back below what was announced cannot happen to a single writer, but the range never goes backwards.
  assert.deepEqual(nextAnnouncement(1000, 900), { fromSeq: 1001, toSeq: 1000 });
});

test('totalChanges sums created, updated and deleted over partitions', () => {
  assert.equal(totalChanges({}), 0);
  assert.equal(
    totalChanges({ a: { created: 1, updated: 2, deleted: 3 }, b: { created: 0, updated: 0, deleted: 4 } }),
    10,
  );
});

test('per-connection webhook: from the input, or from the carried state after continue-as-new', () => {
  assert.equal(
    webhookUrlFromInput({ tenantId: 'a', notifyWebhookUrl: 'https://hooks.example/a' }),
    'https://hooks.example/a',
  );
  assert.equal(
    webhookUrlFromInput({ __carried: { settings: { notifyWebhookUrl: 'https://hooks.example/b' } } }),
    'https://hooks.example/b',
  );
  assert.equal(webhookUrlFromInput({ tenantId: 'a' }), undefined);
  assert.equal(webhookUrlFromInput(null), undefined);
});

test('changes --since: a non-negative integer, anything else is a usage error', () => {
  assert.equal(parseSince(undefined), 0);
  assert.equal(parseSince('0'), 0);
  assert.equal(parseSince('12345'), 12345);
  for (const bad of ['-1', '1.5', 'abc', '', '1e3', '{"$gt":0}']) assert.throws(() => parseSince(bad), CliExit, bad);
});
