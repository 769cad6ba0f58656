/**
 * What every bench section needs: a service config pointed at the bench's simulator, a fresh MongoDB database, a
 * Temporal client and (when asked) a worker, exactly as production builds them.
 */
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker, type WorkerOptions } from '@temporalio/worker';
import { parseConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/lib/logger.js';
import { connectMongo, ensureIndexes, type Mongo } from '../../src/lib/mongo.js';
import { DEMO_APPS } from '../../src/simulator/apps.js';
import { connectClient } from '../../src/temporal/client.js';
import { createWorker } from '../../src/worker.js';

export const BENCH_ENCRYPTION_KEY = Buffer.alloc(32, 11).toString('base64');

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** Environment of a service process (worker) pointed at the simulator, with its own database and task queue. */
export function serviceEnv(simEnv: Record<string, string>, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'development',
    LOG_LEVEL: 'warn',
    TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    MONGODB_URI: process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017',
    MONGODB_DB: uniqueName('bench'),
    TEMPORAL_TASK_QUEUE: uniqueName('bench-tq'),
    TOKEN_ENCRYPTION_KEY: BENCH_ENCRYPTION_KEY,
    SAGE_ACCOUNTING_CLIENT_ID: DEMO_APPS.sageAccounting.clientId,
    SAGE_ACCOUNTING_CLIENT_SECRET: DEMO_APPS.sageAccounting.clientSecret,
    SAGE200_CLIENT_ID: DEMO_APPS.sage200.clientId,
    SAGE200_CLIENT_SECRET: DEMO_APPS.sage200.clientSecret,
    SAGE200_SUBSCRIPTION_KEY: DEMO_APPS.sage200.subscriptionKey,
    ...simEnv,
    ...extra,
  };
}

let runtimeInstalled = false;
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    /* already installed */
  }
}

export interface BenchStack {
  env: Record<string, string>;
  config: Config;
  mongo: Mongo;
  client: Client;
  connection: NativeConnection;
  startWorker(overrides?: Partial<WorkerOptions>): Promise<Worker>;
  close(opts?: { keepDatabase?: boolean }): Promise<void>;
}

export async function benchStack(env: Record<string, string>): Promise<BenchStack> {
  quietRuntime();
  const config = parseConfig(env);
  const log = createLogger({ level: config.LOG_LEVEL });
  const mongo = await connectMongo(config.MONGODB_URI, config.MONGODB_DB, { appName: 'sage-sync-bench' });
  await ensureIndexes(mongo);
  const client = await connectClient(config);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const running: { worker: Worker; done: Promise<void> }[] = [];
  return {
    env,
    config,
    mongo,
    client,
    connection,
    async startWorker(overrides = {}) {
      const bundle = process.env.WORKFLOW_BUNDLE_PATH;
      const worker = await createWorker({ config, connection, client, mongo, log }, { ...(bundle ? { workflowBundle: { codePath: bundle } } : {}), ...overrides });
      running.push({ worker, done: worker.run() });
      return worker;
    },
    async close(opts = {}) {
      for (const r of running) {
        if (r.worker.getState() === 'RUNNING') r.worker.shutdown();
        await r.done.catch(() => {});
      }
      await connection.close();
      await client.connection.close();
      if (!opts.keepDatabase) await mongo.db.dropDatabase().catch(() => {});
      await mongo.close();
    },
  };
}
