/**
 * What every bench section needs: a service config pointed at the bench's simulator, a fresh MongoDB database, a
 * Temporal client and (when asked) a worker, exactly as production builds them — the test suite's stack
 * (test/helpers/env.ts `stackFor`) with the bench's config.
 */
import { parseConfig } from '../../src/config.js';
import { DEMO_APPS } from '../../src/simulator/apps.js';
import { stackFor, uniqueName, type TestStack } from '../../test/helpers/env.js';

export { uniqueName };

export const BENCH_ENCRYPTION_KEY = Buffer.alloc(32, 11).toString('base64');

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

export interface BenchStack extends TestStack {
  env: Record<string, string>;
}

export async function benchStack(env: Record<string, string>): Promise<BenchStack> {
  const stack = await stackFor(parseConfig(env), { appName: 'sage-sync-bench', runtimeLogLevel: 'ERROR' });
  return { ...stack, env };
}
