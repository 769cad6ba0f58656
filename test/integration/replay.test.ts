/**
 * Replays saved `tenantConnection` histories (test/histories, recorded by test/helpers/record-token-histories.ts) against
 * the current workflow code with the shared encrypted data converter. A change that breaks running connections
 * (nondeterminism) fails here, without a server.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { dataConverter } from '../../src/temporal/data-converter.js';
import { WORKFLOW_BUNDLER_OPTIONS, WORKFLOWS_PATH } from '../../src/worker.js';
import { testConfig } from '../helpers/env.js';

const dir = path.join(import.meta.dirname, '..', 'histories');
const files = readdirSync(dir).filter((f) => f.startsWith('tenant-connection') && f.endsWith('.json'));

test('saved tenantConnection histories replay without nondeterminism', async () => {
  assert.ok(files.length >= 3, 'histories are recorded');
  const bundle = process.env.WORKFLOW_BUNDLE_PATH;
  const source = bundle
    ? { workflowBundle: { codePath: bundle } }
    : { workflowsPath: WORKFLOWS_PATH, bundlerOptions: WORKFLOW_BUNDLER_OPTIONS };
  for (const f of files) {
    const saved = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as {
      format: string;
      data: string;
      workflowId: string;
    };
    assert.equal(saved.format, 'temporal.api.history.v1.History+base64');
    const history = proto.temporal.api.history.v1.History.decode(Buffer.from(saved.data, 'base64'));
    // The real workflow id matters: the workflow checks it is running under its canonical id.
    await Worker.runReplayHistory({ ...source, dataConverter: dataConverter(testConfig()) }, history, saved.workflowId);
  }
});
