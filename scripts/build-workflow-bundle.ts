/** Prebuilds the workflow bundle (production worker and tests), as in temporalio/samples-typescript `production/`. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_BUNDLE_OPTIONS, WORKFLOW_BUNDLE_PATH } from '../src/worker.js';

const out = path.resolve(process.argv[2] ?? WORKFLOW_BUNDLE_PATH);
const { code } = await bundleWorkflowCode({ ...WORKFLOW_BUNDLE_OPTIONS, logger: undefined });
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, code);
console.error(`workflow bundle written to ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
