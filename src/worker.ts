/**
 * The Temporal worker (production entry, `npm run worker`). Connects to Temporal and MongoDB from config, registers the
 * workflows by path (or the prebuilt bundle in production) and the activities built by `createActivities(deps)`, and
 * shuts down cleanly on SIGINT/SIGTERM (the SDK drains in-flight tasks first).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Client } from '@temporalio/client';
import type { BundleOptions } from '@temporalio/worker';
import {
  DefaultLogger,
  makeTelemetryFilterString,
  NativeConnection,
  Runtime,
  Worker,
  type WorkerOptions,
} from '@temporalio/worker';
import type { Logger } from 'pino';
import { loadConfig, type Config } from './config.js';
import { createActivities } from './activities/index.js';
import { logger } from './lib/logger.js';
import { enableProcessMetrics } from './lib/metrics.js';
import { sdkMetricsBindAddress, startWorkerMetricsServer } from './lib/metrics-server.js';
import { connectMongo, ensureIndexes, type Mongo } from './lib/mongo.js';
import { connectClient } from './temporal/client.js';
import { dataConverter, FAILURE_CONVERTER_PATH } from './temporal/data-converter.js';

export const WORKFLOWS_PATH = path.join(
  import.meta.dirname,
  'workflows',
  existsSync(path.join(import.meta.dirname, 'workflows', 'index.ts')) ? 'index.ts' : 'index.js',
);
export const WORKFLOW_BUNDLE_PATH = path.join(import.meta.dirname, '..', 'lib', 'workflow-bundle.js');

type WebpackConfig = Parameters<NonNullable<BundleOptions['webpackConfigHook']>>[0];
const WORKFLOW_PRELOAD_PATH = path.join(
  import.meta.dirname,
  'workflows',
  existsSync(path.join(import.meta.dirname, 'workflows', 'preload.ts')) ? 'preload.ts' : 'preload.js',
);

/**
 * Workflow bundler options (issue 14, memory per cached workflow). With the reused V8 context every workflow execution
 * still evaluates the bundle's modules again for itself; `preloadModules` evaluates zod once, shared (and deep-frozen)
 * by all executions, which cuts the heap per cached workflow by ~20 % (bench/workflow-memory.ts: 1.93 → 1.54 MB).
 * Scope hoisting is off because it would inline zod into each importing module and so bypass the shared copy.
 */
export const WORKFLOW_BUNDLER_OPTIONS = {
  preloadModules: [WORKFLOW_PRELOAD_PATH],
  webpackConfigHook: (c: WebpackConfig): WebpackConfig => ({
    ...c,
    optimization: { ...c.optimization, concatenateModules: false },
  }),
};

/** Options of the workflow bundle: the same for the prebuilt one (scripts/build-workflow-bundle.ts), tests and probes. */
export const WORKFLOW_BUNDLE_OPTIONS = {
  workflowsPath: WORKFLOWS_PATH,
  failureConverterPath: FAILURE_CONVERTER_PATH,
  ...WORKFLOW_BUNDLER_OPTIONS,
};

export interface WorkerDeps {
  config: Config;
  connection: NativeConnection;
  client: Client;
  mongo: Mongo;
  log: Logger;
}

/** The worker-tuning settings from config (README "Worker tuning"); the bench reports them beside its figures. */
export function workerTuning(
  config: Config,
): Pick<
  WorkerOptions,
  | 'maxCachedWorkflows'
  | 'reuseV8Context'
  | 'maxConcurrentActivityTaskExecutions'
  | 'maxConcurrentWorkflowTaskExecutions'
  | 'stickyQueueScheduleToStartTimeout'
> {
  return {
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
    reuseV8Context: config.WORKER_REUSE_V8_CONTEXT,
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    stickyQueueScheduleToStartTimeout: config.WORKER_STICKY_QUEUE_TIMEOUT_SECONDS * 1000,
  };
}

/** Builds a worker; tests call this with their own task queue and a prebuilt bundle to save time. */
export async function createWorker(deps: WorkerDeps, overrides: Partial<WorkerOptions> = {}): Promise<Worker> {
  const useBundle = deps.config.NODE_ENV === 'production' && existsSync(WORKFLOW_BUNDLE_PATH);
  return Worker.create({
    connection: deps.connection,
    namespace: deps.config.TEMPORAL_NAMESPACE,
    taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
    ...(useBundle
      ? { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } }
      : { workflowsPath: WORKFLOWS_PATH, bundlerOptions: WORKFLOW_BUNDLER_OPTIONS }),
    activities: createActivities({ config: deps.config, mongo: deps.mongo, client: deps.client, log: deps.log }),
    dataConverter: dataConverter(deps.config),
    // Long sync activities heartbeat; give them time to record a checkpoint before the process exits.
    shutdownGraceTime: '10s',
    // The SDK sends heartbeats at most every 0.8 × heartbeatTimeout: with that, one slow gRPC call times a live attempt
    // out. A 2 s cap leaves the refresh activity (15 s timeout) real slack, and its sealed answer reaches the server fast.
    maxHeartbeatThrottleInterval: '2s',
    ...workerTuning(deps.config),
    ...overrides,
  });
}

/** Memory figures of this process in MB, plus the workflow cache size (WORKER_MEMORY_LOG_SECONDS; issue 14). */
export function memorySnapshot(worker?: Worker): Record<string, number> {
  const m = process.memoryUsage();
  const mb = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;
  return {
    rssMb: mb(m.rss),
    heapTotalMb: mb(m.heapTotal),
    heapUsedMb: mb(m.heapUsed),
    externalMb: mb(m.external),
    arrayBuffersMb: mb(m.arrayBuffers),
    ...(worker ? { cachedWorkflows: worker.getStatus().numCachedWorkflows } : {}),
  };
}

function startMemoryLog(worker: Worker, log: Logger, seconds: number): NodeJS.Timeout {
  const t = setInterval(() => log.info({ memory: memorySnapshot(worker) }, 'worker memory'), seconds * 1000);
  t.unref();
  return t;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = logger().child({ component: 'worker' });
  Runtime.install({
    logger: new DefaultLogger(
      config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? 'DEBUG' : 'INFO',
      (entry) => {
        const level = entry.level.toLowerCase() as 'info';
        (log[level] ?? log.info).call(log, { sdk: true, ...entry.meta }, entry.message);
      },
    ),
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN' }) },
      ...(config.WORKER_METRICS_PORT !== undefined
        ? { metrics: { prometheus: { bindAddress: sdkMetricsBindAddress(config.WORKER_METRICS_PORT) } } }
        : {}),
    },
  });
  // One scrape target per worker: our counters + the SDK runtime metrics (src/lib/metrics-server.ts).
  const metricsServer =
    config.WORKER_METRICS_PORT !== undefined
      ? await startWorkerMetricsServer({
          port: config.WORKER_METRICS_PORT,
          host: config.WORKER_METRICS_HOST,
          ...(config.OPERATOR_TOKEN !== undefined ? { operatorToken: config.OPERATOR_TOKEN } : {}),
          sdkMetricsUrl: `http://${sdkMetricsBindAddress(config.WORKER_METRICS_PORT)}/metrics`,
        })
      : undefined;
  enableProcessMetrics();
  const mongo = await connectMongo(config.MONGODB_URI, config.MONGODB_DB, { appName: 'sage-sync-worker' });
  await ensureIndexes(mongo, (m) => log.warn(m));
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const client = await connectClient(config);
  const worker = await createWorker({ config, connection, client, mongo, log });
  log.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, address: config.TEMPORAL_ADDRESS }, 'worker started');
  const memoryLog =
    config.WORKER_MEMORY_LOG_SECONDS !== undefined
      ? startMemoryLog(worker, log, config.WORKER_MEMORY_LOG_SECONDS)
      : undefined;
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM once in-flight tasks are done
  } finally {
    if (memoryLog) clearInterval(memoryLog);
    await connection.close();
    await client.connection.close();
    await mongo.close();
    metricsServer?.close();
    log.info('worker stopped');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    logger().fatal({ err }, 'worker failed');
    process.exit(1);
  });
}
