/**
 * A worker process for the fault suite: the production wiring (`createWorker` with `createActivities`, same config
 * loading) but with the prebuilt workflow bundle from WORKFLOW_BUNDLE_PATH, so a worker restarted after a SIGKILL polls
 * again in ~2 s instead of re-bundling for ~20 s. Run as a child: `node --import tsx test/helpers/fault-worker.ts`.
 * Also exports `startFaultWorker()` to spawn it and `ensureBundle()` to build the bundle once when `npm test` did not.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchWorkerProcess, type WorkerProcess } from './spawn-worker.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** Builds the workflow bundle once (test-output/) unless WORKFLOW_BUNDLE_PATH already points at one. */
export async function ensureBundle(): Promise<string> {
  const given = process.env.WORKFLOW_BUNDLE_PATH;
  if (given && existsSync(given)) return given;
  const out = path.join(ROOT, 'test-output', 'fault-workflow-bundle.js');
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const { WORKFLOW_BUNDLE_OPTIONS } = await import('../../src/worker.js');
  const { code } = await bundleWorkflowCode({ ...WORKFLOW_BUNDLE_OPTIONS, logger: undefined });
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, code);
  process.env.WORKFLOW_BUNDLE_PATH = out;
  return out;
}

export type FaultWorker = WorkerProcess;

export function startFaultWorker(env: Record<string, string>, bundlePath: string, timeoutMs = 90_000): FaultWorker {
  return launchWorkerProcess(
    'test/helpers/fault-worker.ts',
    { LOG_LEVEL: 'info', ...env, WORKFLOW_BUNDLE_PATH: bundlePath },
    { readyLine: 'fault worker polling', label: 'fault worker', timeoutMs, keepOutputChars: 200_000 },
  );
}

async function main(): Promise<void> {
  const { NativeConnection, Runtime, DefaultLogger } = await import('@temporalio/worker');
  const { loadConfig } = await import('../../src/config.js');
  const { logger } = await import('../../src/lib/logger.js');
  const { connectMongo, ensureIndexes } = await import('../../src/lib/mongo.js');
  const { connectClient } = await import('../../src/temporal/client.js');
  const { createWorker } = await import('../../src/worker.js');
  const config = loadConfig();
  const log = logger().child({ component: 'fault-worker' });
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const mongo = await connectMongo(config.MONGODB_URI, config.MONGODB_DB, { appName: 'sage-sync-fault-worker' });
  await ensureIndexes(mongo);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const client = await connectClient(config);
  // FAULT_WORKER_MAX_ACTIVITIES=1: a worker busy with one activity has no activity poll outstanding, so a test that
  // freezes it (SIGSTOP) knows the retry cannot be handed to the frozen process.
  const maxActivities = Number(process.env.FAULT_WORKER_MAX_ACTIVITIES ?? 0);
  const worker = await createWorker(
    { config, connection, client, mongo, log },
    {
      workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! },
      ...(maxActivities > 0 ? { maxConcurrentActivityTaskExecutions: maxActivities } : {}),
    },
  );
  process.stdout.write('fault worker polling\n');
  await worker.run();
  await connection.close();
  await client.connection.close();
  await mongo.close();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    process.stderr.write(`fault worker failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
