/** Prebuilds the workflow bundle (production worker and tests), as in temporalio/samples-typescript `production/`. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from '../src/temporal/data-converter.js';
import { WORKFLOW_BUNDLE_PATH, WORKFLOWS_PATH } from '../src/worker.js';

const out = path.resolve(process.argv[2] ?? WORKFLOW_BUNDLE_PATH);
const { code } = await bundleWorkflowCode({
  workflowsPath: WORKFLOWS_PATH,
  failureConverterPath: FAILURE_CONVERTER_PATH,
  logger: undefined,
});
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, code);
console.error(`workflow bundle written to ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
