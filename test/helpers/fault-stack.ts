/**
 * The setup the fault test files share (beside env.ts): a simulator, a test stack on it (optionally with a webhook
 * receiver, a SEPARATE MongoDB-wire or Temporal server from separate-infra.ts, an in-process worker), child-process
 * workers that are SIGKILLed when the file ends, and the connect-then-sync steps most of them start with.
 * `faultSuiteStack()` registers the file's `before` and `after` hooks; read its fields inside tests.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId, disconnectSignal, type Provider } from '../../src/messages.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import { syncRunId } from '../../src/sync/documents.js';
import { syncCustomers } from '../../src/workflows/index.js';
import { connectTenant, waitForStatus } from './consent.js';
import { testStack, uniqueName, type TestStack } from './env.js';
import { compareWithTruth, type TruthReport } from './faults.js';
import { separateMongo, separateTemporal, type SeparateInfra } from './separate-infra.js';
import { spawnWorker, workerEnvFor, type SpawnedWorker } from './spawn-worker.js';
import { webhookReceiver } from './token-harness.js';

export type WebhookReceiver = Awaited<ReturnType<typeof webhookReceiver>>;

export interface FaultSuiteOptions {
  /** Start a webhook receiver and point NOTIFY_WEBHOOK_URL (of the stack and of spawned workers) at it. */
  webhook?: boolean;
  /** Run the stack against a separate server of its own (which the test may stop) instead of the shared one. */
  separate?: 'mongo' | 'temporal';
  /** More environment for the stack. */
  env?: Record<string, string>;
  /** Start one in-process worker on the stack; a crash of it is kept in `workerCrash`. */
  worker?: boolean;
}

export interface FaultSuite {
  readonly sim: RunningSimulator;
  readonly stack: TestStack;
  /** With `webhook`. */
  readonly hook: WebhookReceiver;
  /** With `separate`: the separate server. */
  readonly infra: SeparateInfra;
  /** With `worker`. */
  readonly worker: { worker: Worker; done: Promise<void> };
  /** With `worker`: what the in-process worker's run rejected with, `null` while it did not. */
  readonly workerCrash: unknown;
  /** The environment of a child worker joining the stack: its queue, database, key, the simulator (and webhook). */
  workerEnv(extra?: Record<string, string>): Record<string, string>;
  /** The production worker entry as a child process; still running ones are SIGKILLed after the file. */
  spawnWorker(env: Record<string, string>): SpawnedWorker;
  /**
   * A new simulated user with `partitions` partitions, connected through the real consent flow (tenant id from
   * `prefix`), once every partition reported a succeeded first sync.
   */
  connectSynced(
    provider: Provider,
    opts: { prefix: string; partitions: number; customersPerPartition: number; timeoutMs: number },
  ): Promise<{ tenantId: string; userId: string; partitionIds: string[] }>;
  /**
   * How the Sage 200 SIGKILL tests start: the child-worker environment for a kill (pages of 20, heartbeat timeout
   * `KILL_TEST_HEARTBEAT_TIMEOUT_SECONDS`), a first child worker on it (ready), then `connectSynced` with
   * `partitions` empty partitions (90 s). Returns the environment for the worker started after the kill.
   */
  startKillTest(opts: { prefix: string; partitions: number }): Promise<{
    env: Record<string, string>;
    first: SpawnedWorker;
    provider: 'sage-200';
    tenantId: string;
    userId: string;
    partitionIds: string[];
  }>;
  /** Disconnects the tenant (without revoking at Sage); errors are ignored (the file is ending anyway). */
  disconnect(provider: Provider, tenantId: string): Promise<void>;
  /** Starts `syncCustomers` with `args` under a fresh workflow id from `prefix`. */
  startSync(
    prefix: string,
    args: Parameters<typeof syncCustomers>[0],
  ): Promise<{ workflowId: string; handle: WorkflowHandle<typeof syncCustomers> }>;
  /**
   * Polls the `sync_runs` document of this run's partition until it counts at least `min` pages (or 60 s passed);
   * returns the last count seen, for the caller to assert on.
   */
  pagesWritten(workflowId: string, partitionId: string, min: number, intervalMs?: number): Promise<number>;
  /**
   * A new simulated user with one partition of `customersPerPartition` customers, connected through the real consent
   * flow with a weekly schedule (so the test's own runs are the only ones that matter). Does not wait for a sync.
   */
  connectWeekly(
    provider: Provider,
    opts: { prefix: string; customersPerPartition: number },
  ): Promise<{ tenantId: string; userId: string; partitionId: string }>;
  /**
   * Polls the `sync_runs` document of the tenant's run `syncWorkflowId` until its checkpoint counts at least `min`
   * pages (300 looks, 200 ms apart); returns the last count seen.
   */
  checkpointPages(tenantId: string, syncWorkflowId: string, min: number): Promise<number>;
  /** The ids of this task queue's `syncCustomers` runs still running. */
  openSyncs(): Promise<string[]>;
  /**
   * A last full run of the partition (workflow id from `prefix`), then what MongoDB holds against the simulator's truth
   * (deletions checked).
   */
  finalFullSync(
    prefix: string,
    key: { tenantId: string; provider: Provider; partitionId: string },
  ): Promise<{ status: string; report: TruthReport }>;
}

export function faultSuiteStack(opts: FaultSuiteOptions = {}): FaultSuite {
  let sim: RunningSimulator | undefined;
  let stack: TestStack | undefined;
  let hook: WebhookReceiver | undefined;
  let infra: (SeparateInfra & { uri?: string; address?: string }) | undefined;
  let worker: { worker: Worker; done: Promise<void> } | undefined;
  let workerCrash: unknown = null;
  const workers: SpawnedWorker[] = [];
  const ready = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`fault suite: no ${what} (not set up, or not asked for)`);
    return v;
  };

  before(async () => {
    if (opts.separate === 'mongo') infra = await separateMongo();
    if (opts.separate === 'temporal') infra = await separateTemporal();
    await infra?.up();
    sim = await startSimulator({ usersPerProvider: 0, customersPerPartition: 0 });
    if (opts.webhook) hook = await webhookReceiver();
    stack = await testStack({
      ...sim.env,
      ...(hook ? { NOTIFY_WEBHOOK_URL: hook.url } : {}),
      ...(opts.separate === 'mongo' ? { MONGODB_URI: infra!.uri } : {}),
      ...(opts.separate === 'temporal' ? { TEMPORAL_ADDRESS: infra!.address } : {}),
      ...opts.env,
    });
    if (opts.worker) {
      worker = await stack.startWorker();
      worker.done.catch((err) => (workerCrash = err));
    }
  });
  after(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    if (opts.separate) await stack?.close().catch(() => {});
    else await stack?.close();
    await sim?.close();
    await hook?.close();
    await infra?.destroy();
  });

  const suite: FaultSuite = {
    get sim() {
      return ready(sim, 'simulator');
    },
    get stack() {
      return ready(stack, 'stack');
    },
    get hook() {
      return ready(hook, 'webhook receiver');
    },
    get infra() {
      return ready(infra, 'separate server');
    },
    get worker() {
      return ready(worker, 'in-process worker');
    },
    get workerCrash() {
      return workerCrash;
    },
    workerEnv(extra = {}) {
      return workerEnvFor(suite.stack.config, {
        ...suite.sim.env,
        ...(hook ? { NOTIFY_WEBHOOK_URL: hook.url } : {}),
        ...extra,
      });
    },
    spawnWorker(env) {
      const w = spawnWorker(env);
      workers.push(w);
      return w;
    },
    async connectSynced(provider, o) {
      const tenantId = uniqueName(o.prefix).replace(/_/g, '-');
      const user = suite.sim.admin.createUser({
        provider,
        partitions: o.partitions,
        customersPerPartition: o.customersPerPartition,
      });
      const status = await connectTenant(
        {
          client: suite.stack.client,
          taskQueue: suite.stack.config.TEMPORAL_TASK_QUEUE,
          simAdminUrl: `${suite.sim.url}/__admin`,
        },
        { tenantId, provider, userId: user.id },
      );
      const partitionIds = status.partitions.map((p) => p.id);
      await waitForStatus(
        suite.stack.client,
        connectionWorkflowId(provider, tenantId),
        (s) => partitionIds.every((id) => s.lastSync[id]?.status === 'succeeded'),
        o.timeoutMs,
      );
      return { tenantId, userId: user.id, partitionIds };
    },
    async startKillTest(o) {
      const env = suite.workerEnv({
        SAGE200_PAGE_SIZE: '20',
        SYNC_HEARTBEAT_TIMEOUT_SECONDS: KILL_TEST_HEARTBEAT_TIMEOUT_SECONDS,
      });
      const first = suite.spawnWorker(env);
      await first.ready;
      const provider = 'sage-200' as const;
      const { tenantId, userId, partitionIds } = await suite.connectSynced(provider, {
        prefix: o.prefix,
        partitions: o.partitions,
        customersPerPartition: 0,
        timeoutMs: 90_000,
      });
      return { env, first, provider, tenantId, userId, partitionIds };
    },
    async disconnect(provider, tenantId) {
      await suite.stack.client.workflow
        .getHandle(connectionWorkflowId(provider, tenantId))
        .signal(disconnectSignal, { revoke: false })
        .catch(() => {});
    },
    async startSync(prefix, args) {
      const workflowId = uniqueName(prefix);
      const handle = await suite.stack.client.workflow.start(syncCustomers, {
        workflowId,
        taskQueue: suite.stack.config.TEMPORAL_TASK_QUEUE,
        args: [args],
      });
      return { workflowId, handle };
    },
    async pagesWritten(workflowId, partitionId, min, intervalMs = 50) {
      const runs = suite.stack.mongo.collection(COLLECTIONS.syncRuns);
      let pages = 0;
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(intervalMs)) {
        const run = await runs.findOne({ _id: syncRunId(workflowId, partitionId) } as never);
        pages = (run?.pages as number | undefined) ?? 0;
        if (pages >= min) break;
      }
      return pages;
    },
    async connectWeekly(provider, o) {
      const user = suite.sim.admin.createUser({
        provider,
        partitions: 1,
        customersPerPartition: o.customersPerPartition,
      });
      const tenantId = uniqueName(o.prefix);
      const status = await connectTenant(
        {
          client: suite.stack.client,
          taskQueue: suite.stack.config.TEMPORAL_TASK_QUEUE,
          simAdminUrl: `${suite.sim.url}/__admin`,
        },
        { tenantId, provider, userId: user.id, input: { sync: { intervalMinutes: 7 * 24 * 60 } } },
      );
      return { tenantId, userId: user.id, partitionId: status.partitions[0]!.id };
    },
    async checkpointPages(tenantId, syncWorkflowId, min) {
      let pages = 0;
      for (let i = 0; i < 300; i++) {
        const run = await suite.stack.mongo.collection(COLLECTIONS.syncRuns).findOne({ tenantId, syncWorkflowId });
        pages = (run?.checkpoint?.counts?.pages as number | undefined) ?? (run?.pages as number | undefined) ?? 0;
        if (pages >= min) break;
        await sleep(200);
      }
      return pages;
    },
    async openSyncs() {
      const open: string[] = [];
      for await (const w of suite.stack.client.workflow.list({
        query: `TaskQueue = "${suite.stack.config.TEMPORAL_TASK_QUEUE}" AND WorkflowType = "syncCustomers" AND ExecutionStatus = "Running"`,
      }))
        open.push(w.workflowId);
      return open;
    },
    async finalFullSync(prefix, key) {
      const final = await suite.stack.client.workflow.execute(syncCustomers, {
        taskQueue: suite.stack.config.TEMPORAL_TASK_QUEUE,
        workflowId: uniqueName(prefix),
        args: [{ tenantId: key.tenantId, provider: key.provider, mode: 'full' }],
      });
      const report = await compareWithTruth(
        suite.stack.mongo,
        key,
        suite.sim.admin.truth(key.provider, key.partitionId).customers,
        { checkDeletions: true },
      );
      return { status: final.status, report };
    },
  };
  return suite;
}

/**
 * `SYNC_HEARTBEAT_TIMEOUT_SECONDS` for tests that SIGKILL a worker mid-sync: short, so the retry starts soon after the
 * kill, but well above the worker's 2-s heartbeat cap (worker.ts). At 3 s a live attempt on a freshly started, loaded
 * worker was timed out and ran beside its own retry (both reading pages; CI saw 12 pages re-read for a window of 5).
 */
export const KILL_TEST_HEARTBEAT_TIMEOUT_SECONDS = '8';
