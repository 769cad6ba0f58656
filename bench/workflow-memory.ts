/**
 * Issue 14 probe: memory per CACHED workflow execution on one worker (in-process, so the workflow V8 context shares this
 * isolate's heap and `heapUsed` after a GC counts it). Starts PROBE_WORKFLOWS (200) `tenantConnection` workflows (they
 * wait for consent: idle, cached, like a connected tenant between wakes), then reports heap/RSS per cached workflow.
 *
 *   TEMPORAL_ADDRESS=127.0.0.1:7733 nice -n 19 node --expose-gc --import tsx bench/workflow-memory.ts [bundle.js]
 *
 * Use a private Temporal server (scripts/with-infra.sh with TEMPORAL_PORT). The bundle defaults to a fresh one built
 * with the production options (scripts/build-workflow-bundle.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import { NativeConnection, Runtime, DefaultLogger } from '@temporalio/worker';
import { bundleWorkflowCode } from '@temporalio/worker';
import { parseConfig } from '../src/config.js';
import { connectionWorkflowId, statusQuery } from '../src/messages.js';
import { createWorker, memorySnapshot, WORKFLOW_BUNDLE_OPTIONS } from '../src/worker.js';
import { connectMongo } from '../src/lib/mongo.js';
import { connectClient } from '../src/temporal/client.js';
import { logger } from '../src/lib/logger.js';

const n = Number(process.env.PROBE_WORKFLOWS ?? 200);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
Runtime.install({ logger: new DefaultLogger('WARN') });
const suffix = `${Date.now().toString(36)}`;
const config = parseConfig({
  ...process.env,
  NODE_ENV: 'test',
  TOKEN_ENCRYPTION_KEY: Buffer.alloc(32, 5).toString('base64'),
  MONGODB_DB: `rss_probe_${suffix}`,
  TEMPORAL_TASK_QUEUE: `rss-probe-${suffix}`,
  LOG_LEVEL: 'warn',
  SAGE_ACCOUNTING_CLIENT_ID: 'probe-client',
  SAGE_ACCOUNTING_CLIENT_SECRET: 'probe-secret',
});
const codePath = process.argv[2];
const workflowBundle = codePath
  ? { codePath }
  : { code: (await bundleWorkflowCode({ ...WORKFLOW_BUNDLE_OPTIONS, logger: undefined })).code };
const mongo = await connectMongo(config.MONGODB_URI, config.MONGODB_DB, { appName: 'rss-probe' });
const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
const client = await connectClient(config);
const log = logger().child({ component: 'probe' });
const worker = await createWorker(
  { config, connection, client, mongo, log },
  {
    workflowsPath: undefined,
    workflowBundle,
    maxCachedWorkflows: n + 50,
    // PROBE_DEBUG=1: workflows run on this thread (no workflow worker thread), so heapUsed and heap snapshots include them.
    ...(process.env.PROBE_DEBUG === '1' ? { debugMode: true } : {}),
  },
);

async function settle(): Promise<Record<string, number>> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await sleep(300);
  }
  return memorySnapshot(worker);
}

async function startAll(ids: string[]): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (i < ids.length) {
        const tenantId = ids[i++]!;
        const h = await client.workflow.start('tenantConnection', {
          workflowId: connectionWorkflowId('sage-accounting', tenantId),
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          args: [{ tenantId, provider: 'sage-accounting' }],
        });
        for (;;) {
          const s = await h.query(statusQuery).catch(() => null);
          if (s?.authorizationUrl) break;
          await sleep(100);
        }
      }
    }),
  );
}

await worker.runUntil(async () => {
  const warm = Array.from({ length: 5 }, (_, i) => `w${suffix}-${i}`);
  await startAll(warm);
  const before = await settle();
  console.log('after 5 warm-up workflows', JSON.stringify(before));
  if (process.env.PROBE_SNAPSHOT)
    console.log('snapshot', v8.writeHeapSnapshot(`${process.env.PROBE_SNAPSHOT}-1.heapsnapshot`));
  const ids = Array.from({ length: n }, (_, i) => `p${suffix}-${i}`);
  const t0 = Date.now();
  await startAll(ids);
  const after = await settle();
  console.log(`after ${n} more (${((Date.now() - t0) / 1000).toFixed(0)} s)`, JSON.stringify(after));
  if (process.env.PROBE_SNAPSHOT)
    console.log('snapshot', v8.writeHeapSnapshot(`${process.env.PROBE_SNAPSHOT}-2.heapsnapshot`));
  const per = (k: string) => (((after[k]! - before[k]!) * 1024) / n).toFixed(0);
  console.log(
    `per cached workflow: heapUsed ${per('heapUsedMb')} KB, rss ${per('rssMb')} KB, external ${per('externalMb')} KB`,
  );
  for (const id of [...warm, ...ids])
    await client.workflow
      .getHandle(connectionWorkflowId('sage-accounting', id))
      .terminate('probe')
      .catch(() => {});
});
await connection.close();
await client.connection.close();
await mongo.db.dropDatabase().catch(() => {});
await mongo.close();
