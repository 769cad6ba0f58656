/**
 * Issue 14 (memory per cached workflow): with the reused V8 context each workflow execution evaluates the bundle's
 * modules again for itself, except the preloaded ones. zod (~150 schema classes) must be preloaded and shared, and not
 * inlined into our modules by scope hoisting (which would bypass the shared copy: each execution would build its own).
 * bench/workflow-memory.ts measures the effect (heap per cached workflow 1.93 MB → 1.54 MB).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_BUNDLE_OPTIONS } from '../../src/worker.js';

test('the workflow bundle preloads zod as shared modules (not per workflow execution)', async () => {
  const { code } = await bundleWorkflowCode({ ...WORKFLOW_BUNDLE_OPTIONS, logger: undefined });
  const preload = /exports\.preloadModules = function preloadModules\(\) \{([^}]*)\}/.exec(code);
  assert.ok(preload, 'the bundle has a preloadModules entry');
  assert.match(
    preload[1]!,
    /__webpack_require__\([^)]*src\/workflows\/preload\.ts/,
    'preloadModules loads src/workflows/preload.ts',
  );
  // zod stays its own modules (so the workflows' imports hit the shared module cache) ...
  assert.match(
    code,
    /^\/\*\*\*\/ "\.\/node_modules\/zod\/v4\/classic\/schemas\.js"/m,
    'zod is bundled as separate modules',
  );
  // ... and exactly once (its ESM build; a CommonJS copy beside it would not be shared).
  assert.doesNotMatch(code, /node_modules\/zod\/[^"]*\.cjs"/, 'no CommonJS copy of zod');
});
