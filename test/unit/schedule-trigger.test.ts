/**
 * Temporal quirk pinned here: a Schedule names each run `{workflowId}-{time to the second}`, so two actions in
 * one second share a workflow id (the second one's start is refused and the request lost).
 * `waitBeforeTrigger` spaces a trigger past the second of the schedule's latest action.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TRIGGER_CLOCK_MARGIN_MS, waitBeforeTrigger } from '../../src/activities/schedule.js';

const describeWith = (createdAt: string, actions: string[] = []) =>
  ({
    info: {
      createdAt: new Date(createdAt),
      recentActions: actions.map((t) => ({ scheduledAt: new Date(t), takenAt: new Date(t) })),
    },
  }) as never;

test('a trigger in the same second as the schedule creation (which triggers at once) waits into the next second', () => {
  const wait = waitBeforeTrigger(describeWith('2026-12-02T10:00:00.100Z'), Date.parse('2026-12-02T10:00:00.700Z'));
  assert.equal(wait, 300 + TRIGGER_CLOCK_MARGIN_MS);
});

test('a trigger in the same second as the latest action waits past that second; an older action costs nothing', () => {
  const d = describeWith('2026-12-02T09:00:00Z', ['2026-12-02T10:00:05.900Z', '2026-12-02T10:00:07.010Z']);
  assert.equal(waitBeforeTrigger(d, Date.parse('2026-12-02T10:00:07.500Z')), 500 + TRIGGER_CLOCK_MARGIN_MS);
  assert.equal(waitBeforeTrigger(d, Date.parse('2026-12-02T10:00:09.000Z')), 0);
});

test('just after the second boundary, the clock margin still applies (the server may be a little behind)', () => {
  const d = describeWith('2026-12-02T10:00:00.999Z');
  assert.equal(waitBeforeTrigger(d, Date.parse('2026-12-02T10:00:01.100Z')), TRIGGER_CLOCK_MARGIN_MS - 100);
});
