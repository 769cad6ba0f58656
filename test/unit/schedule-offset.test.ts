/**
 * Temporal quirk pinned here: an interval spec without an offset fires at `epoch + n × every`, so every tenant with the
 * same interval would start its sync in the same second. `scheduleOffsetSeconds` gives each schedule its own second.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scheduleOffsetSeconds } from '../../src/activities/schedule.js';
import { syncScheduleId } from '../../src/messages.js';

const ids = Array.from({ length: 1000 }, (_, i) => syncScheduleId('sage-accounting', `tenant-${i}`));

test('the offset is inside the interval and the same on every call (schedule updates keep their second)', () => {
  for (const minutes of [1, 5, 60]) {
    for (const id of ids.slice(0, 50)) {
      const o = scheduleOffsetSeconds(id, minutes);
      assert.ok(Number.isInteger(o) && o >= 0 && o < minutes * 60, `${id} every ${minutes} min: offset ${o}`);
      assert.equal(scheduleOffsetSeconds(id, minutes), o);
    }
  }
});

test('1,000 five-minute tenants are spread over the interval instead of firing in one second', () => {
  const perSecond = new Map<number, number>();
  for (const id of ids) {
    const o = scheduleOffsetSeconds(id, 5);
    perSecond.set(o, (perSecond.get(o) ?? 0) + 1);
  }
  // 1,000 over 300 seconds: ~3.3 a second on average; a hash that collapsed would put them in a few seconds.
  assert.ok(perSecond.size > 250, `distinct seconds used: ${perSecond.size}`);
  assert.ok(Math.max(...perSecond.values()) <= 12, `busiest second: ${Math.max(...perSecond.values())} starts`);
  const firstMinute = ids.filter((id) => scheduleOffsetSeconds(id, 5) < 60).length;
  assert.ok(firstMinute > 150 && firstMinute < 250, `starts in the first of 5 minutes: ${firstMinute}`);
});

test('two tenants, or one tenant of two providers, do not share an offset by construction', () => {
  const a = scheduleOffsetSeconds(syncScheduleId('sage-accounting', 'acme'), 60);
  const b = scheduleOffsetSeconds(syncScheduleId('sage-200', 'acme'), 60);
  const c = scheduleOffsetSeconds(syncScheduleId('sage-accounting', 'acme-2'), 60);
  assert.ok(new Set([a, b, c]).size > 1, `offsets ${a}, ${b}, ${c}`);
});
