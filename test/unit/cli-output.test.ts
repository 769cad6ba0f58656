/** The CLI's text output: the sync progress bar (driven by Sage's `$total` when known) and aligned tables. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { ProgressView, renderProgress } from '../../src/cli/progress.js';
import { table } from '../../src/cli/table.js';

test('with a total, progress is a bar with a percentage', () => {
  assert.equal(
    renderProgress({ pages: 3, fetched: 250, total: 1000, runs: 2, finishedRuns: 1 }, 0, 10),
    '[###-------]  25%  250/1000 records, 3 pages, 1/2 partitions done',
  );
  assert.match(
    renderProgress({ pages: 9, fetched: 1200, total: 1000, runs: 1, finishedRuns: 1 }, 0, 10),
    /^\[#{10}\] 100%/,
    'never past 100%',
  );
});

test('without a total, progress is a spinner with counts (or plain counts on a pipe)', () => {
  assert.equal(
    renderProgress({ pages: 2, fetched: 80, total: null, runs: 1, finishedRuns: 0 }, 1),
    '⠙ 80 records, 2 pages, 0/1 partition done',
  );
  assert.equal(
    renderProgress({ pages: 2, fetched: 80, total: null, runs: 1, finishedRuns: 0 }, null),
    '80 records, 2 pages, 0/1 partition done',
  );
});

test('on a pipe the view prints plain lines, throttled, and always the final numbers', () => {
  let out = '';
  const sink = Object.assign(new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) }), { isTTY: false });
  const view = new ProgressView(sink);
  view.update({ pages: 0, fetched: 0, total: null, runs: 1, finishedRuns: 0 });
  view.update({ pages: 1, fetched: 50, total: null, runs: 1, finishedRuns: 0 }); // within 2 s: held back
  view.update({ pages: 2, fetched: 90, total: null, runs: 1, finishedRuns: 1 });
  view.done();
  assert.equal(out, '0 records, 0 pages, 0/1 partition done\n90 records, 2 pages, 1/1 partition done\n');
  assert.ok(!out.includes('\x1b'), 'no terminal control codes on a pipe');
});

test('tables align columns under their headers', () => {
  assert.equal(
    table(
      ['A', 'LONGER'],
      [
        ['xyz', '1'],
        ['', '22'],
      ],
    ),
    'A    LONGER\n---  ------\nxyz  1\n     22',
  );
});
