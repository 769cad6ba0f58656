/**
 * Worker tuning (issue 14: 1,000 tenants on one worker): each Temporal worker option is set from a named variable with a
 * sensible default, a bad value is rejected naming its variable, and `createWorker` passes them to the SDK.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config.js';
import { workerTuning } from '../../src/worker.js';

const KEY = Buffer.alloc(32, 3).toString('base64');

test('defaults: 50 cached workflows, reused V8 context, 100 activities, 40 workflow tasks, 10-s sticky queue', () => {
  assert.deepEqual(workerTuning(parseConfig({ TOKEN_ENCRYPTION_KEY: KEY })), {
    maxCachedWorkflows: 50,
    reuseV8Context: true,
    maxConcurrentActivityTaskExecutions: 100,
    maxConcurrentWorkflowTaskExecutions: 40,
    stickyQueueScheduleToStartTimeout: 10_000,
  });
});

test('every setting comes from its variable', () => {
  const c = parseConfig({
    TOKEN_ENCRYPTION_KEY: KEY,
    WORKER_MAX_CACHED_WORKFLOWS: '1200',
    WORKER_REUSE_V8_CONTEXT: 'false',
    WORKER_MAX_CONCURRENT_ACTIVITIES: '50',
    WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '80',
    WORKER_STICKY_QUEUE_TIMEOUT_SECONDS: '2.5',
  });
  assert.deepEqual(workerTuning(c), {
    maxCachedWorkflows: 1200,
    reuseV8Context: false,
    maxConcurrentActivityTaskExecutions: 50,
    maxConcurrentWorkflowTaskExecutions: 80,
    stickyQueueScheduleToStartTimeout: 2_500,
  });
});

for (const [variable, value] of [
  ['WORKER_MAX_CACHED_WORKFLOWS', '-1'],
  ['WORKER_MAX_CACHED_WORKFLOWS', 'many'],
  ['WORKER_REUSE_V8_CONTEXT', 'yes'],
  ['WORKER_MAX_CONCURRENT_ACTIVITIES', '0'],
  ['WORKER_MAX_CONCURRENT_WORKFLOW_TASKS', '1'],
  ['WORKER_STICKY_QUEUE_TIMEOUT_SECONDS', '0'],
] as const) {
  test(`a bad ${variable} (${value}) is rejected naming it`, () => {
    assert.throws(
      () => parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, [variable]: value }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.ok(
          err.issues.some((i) => i.variable === variable),
          JSON.stringify(err.issues),
        );
        return true;
      },
    );
  });
}
