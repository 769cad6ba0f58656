/**
 * Test wiring against the real servers that `npm test` starts (scripts/with-infra.sh): a config with a unique database
 * and task queue per test file, and workers built exactly as production builds them. The bench builds its stacks with
 * `stackFor` too (bench/lib/stack.ts).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, type Worker, type WorkerOptions } from '@temporalio/worker';
import { parseConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/lib/logger.js';
import { connectMongo, ensureIndexes, type Mongo } from '../../src/lib/mongo.js';
import { connectClient } from '../../src/temporal/client.js';
import { createWorker } from '../../src/worker.js';

/** A fixed test key: tests must be reproducible, and it encrypts nothing real. */
export const TEST_ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64');
/** The operator credential of test web servers (contract §5), and the header that presents it. */
export const TEST_OPERATOR_TOKEN = 'test-operator-token-0123456789';
export const operatorAuth = { authorization: `Bearer ${TEST_OPERATOR_TOKEN}` } as const;

let runtimeInstalled = false;
/** Installs the Temporal runtime with a logger at `level` once per process (the first caller's level wins). */
export function quietRuntime(level: 'WARN' | 'ERROR' = 'WARN'): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger(level) });
  } catch {
    /* already installed by another helper in this process */
  }
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

export function testConfig(env: Record<string, string | undefined> = {}): Config {
  return parseConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    MONGODB_URI: process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017',
    MONGODB_DB: uniqueName('test'),
    TEMPORAL_TASK_QUEUE: uniqueName('tq'),
    TOKEN_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    OPERATOR_TOKEN: TEST_OPERATOR_TOKEN,
    // Test webhook receivers listen on loopback; the refusal of private addresses has its own tests that turn this off.
    NOTIFY_WEBHOOK_ALLOW_PRIVATE: 'true',
    ...env,
  });
}

export interface TestStack {
  config: Config;
  client: Client;
  mongo: Mongo;
  connection: NativeConnection;
  /** Starts a worker on the config's task queue; stop it with `stopWorker` or `close`. */
  startWorker(overrides?: Partial<WorkerOptions>): Promise<{ worker: Worker; done: Promise<void> }>;
  /** Stops the workers, closes the connections and drops the database (unless `keepDatabase`). */
  close(opts?: { keepDatabase?: boolean }): Promise<void>;
}

export async function testStack(env: Record<string, string | undefined> = {}): Promise<TestStack> {
  return stackFor(testConfig(env));
}

/** A stack (Mongo, Temporal client and worker connection, workers on demand) for any config: tests' and the bench's. */
export async function stackFor(
  config: Config,
  opts: { appName?: string; runtimeLogLevel?: 'WARN' | 'ERROR' } = {},
): Promise<TestStack> {
  quietRuntime(opts.runtimeLogLevel);
  const log = createLogger({ level: config.LOG_LEVEL });
  const mongo = await connectMongo(config.MONGODB_URI, config.MONGODB_DB, {
    appName: opts.appName ?? 'sage-sync-test',
  });
  await ensureIndexes(mongo);
  const client = await connectClient(config);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const workers: { worker: Worker; done: Promise<void> }[] = [];
  const bundle = process.env.WORKFLOW_BUNDLE_PATH;
  return {
    config,
    client,
    mongo,
    connection,
    async startWorker(overrides = {}) {
      const worker = await createWorker(
        { config, connection, client, mongo, log },
        { ...(bundle && existsSync(bundle) ? { workflowBundle: { codePath: bundle } } : {}), ...overrides },
      );
      const done = worker.run();
      const entry = { worker, done };
      workers.push(entry);
      return entry;
    },
    async close(closeOpts = {}) {
      for (const w of workers) {
        if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
        await w.done.catch(() => {});
      }
      await connection.close();
      await client.connection.close();
      if (!closeOpts.keepDatabase) await mongo.db.dropDatabase().catch(() => {});
      await mongo.close();
    },
  };
}
