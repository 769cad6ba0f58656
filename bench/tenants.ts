/**
 * Many connected tenants on ONE worker process (src/worker.ts, default worker tuning from src/config.ts): schedule lag
 * beyond the server's own start lag, worker RSS and CPU.
 *
 * N tenants (default 1,000) are connected through the real consent flow (simulator consent + completeAuthorization),
 * each with its own schedule, so the worker holds N live connection workflows: RSS is measured at N directly. Time is
 * The worker runs as in production: `npm run build`'s compiled lib/worker.js on plain Node (no tsx loader), NODE_ENV=production
 * with the prebuilt workflow bundle (lib/workflow-bundle.js), so its RSS includes neither webpack nor tsx. Time is
 * compressed by the schedule interval (default 5 minutes instead of hourly): N tenants every k minutes start
 * N × 60 / k runs an hour, the run rate of that many hourly tenants (12,000 at the defaults).
 *
 * Reduced runs on 2026-12-02 (2 shared cores, private ephemeral dev server via TEMPORAL_PORT): 100 tenants, 1-minute
 * schedules, 8 at a time: 826 ms per connected tenant at load ~1-9 (2.8-8.6 s at load ~20); worker RSS 494 MB at 19
 * tenants, 949 MB at 89, max 1,109 MB at 100 with default tuning; lag beyond start p99 23 s (server start lag p99 58 s).
 * Worker cache (same form, private dev server, 2026-12-02, branch rss): WORKER_MAX_CACHED_WORKFLOWS=50 → RSS max 835 MB,
 * median 680 MB (plateau from ~40 tenants on), lag beyond start p99 75 s (CPU shared with other jobs); =10 → 410-465 MB
 * at 56-92 tenants (491 MB at the end), consent 2 s per tenant, 2 completeAuthorization updates failed ("Workflow Update
 * failed"), then connecting stalled at 92 and running syncCustomers piled up (41 → 94 in 2 min): the cache thrashes (every
 * task of a running sync replays), so 10 is too small; the run was stopped before its observation window.
 * At 32 at a time the shared SQLite dev server failed ("shard status unknown", then "Namespace not found" for good).
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { parseConfig } from '../src/config.js';
import { workerTuning } from '../src/worker.js';
import { connectionWorkflowId, syncScheduleId } from '../src/messages.js';
import { connectTenant } from '../test/helpers/consent.js';
import { fmt, percentile, type Figure } from './lib/report.js';
import { procStats, REPO_ROOT, spawnTs, startWorkerProcess, type SimProcess } from './lib/processes.js';
import { benchStack, serviceEnv, uniqueName } from './lib/stack.js';

const P = 'sage-accounting' as const;

/**
 * The worker's process settings, as docker-compose.yml runs it (README "Worker tuning"): a bounded V8 old space (V8 flags
 * are per process, so this bounds the workflow thread's isolate too — without it the workflow thread's heap kept ~300 MB
 * of garbage at 200 tenants: RSS 772 MB, 584 MB of it outside the main heap) and 2 glibc malloc arenas instead of 8 per
 * core for the core's and libuv's threads. 200 tenants on 1-minute schedules (2026-12-02): defaults RSS max 772 MB;
 * --max-old-space-size=160 --max-semi-space-size=4: 399 MB but GC-bound (CPU 136 %, consent 3.8 s per tenant);
 * 288 + MALLOC_ARENA_MAX=2: 482 MB, CPU 94 %, consent 0.96 s per tenant. BENCH_WORKER_NODE_OPTIONS overrides the flags.
 */
const WORKER_PROCESS_ENV = {
  NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS ?? '--max-old-space-size=288',
  MALLOC_ARENA_MAX: process.env.BENCH_WORKER_MALLOC_ARENA_MAX ?? '2',
};

interface MemorySample {
  rssMb: number;
  heapTotalMb: number;
  heapUsedMb: number;
  externalMb: number;
  arrayBuffersMb: number;
  cachedWorkflows?: number;
  at: number;
}

/** "at the peak: heap used 120 of 180 MB, external 30 MB (buffers 20), native rest 300 MB, 50 cached workflows". */
function memoryAtPeak(samples: MemorySample[], from: number): string {
  const window = samples.filter((m) => m.at >= from);
  if (!window.length) return 'no memory log line from the worker in the window';
  const peak = window.reduce((a, b) => (b.rssMb > a.rssMb ? b : a));
  const native = peak.rssMb - peak.heapTotalMb - peak.externalMb;
  const cached = window.map((m) => m.cachedWorkflows ?? 0);
  return `worker's own memoryUsage() at its logged peak (${window.length} samples, every 15 s): RSS ${peak.rssMb} MB = JS heap ${peak.heapTotalMb} MB (used ${peak.heapUsedMb}) + external ${peak.externalMb} MB (array buffers ${peak.arrayBuffersMb}) + rest ${Math.round(native)} MB (outside the main thread's heap: the workflow thread's V8 heap, Temporal core, code, libuv); cached workflows ${peak.cachedWorkflows ?? '?'} at the peak, ${Math.min(...cached)}-${Math.max(...cached)} over the window`;
}

/** Runs `fn` over `items`, `width` at a time; a lane whose index is not below `allowed()` stops taking items. */
async function pool<T>(
  items: T[],
  width: number,
  fn: (x: T) => Promise<void>,
  allowed: () => number = () => width,
): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async (_, lane) => {
      while (i < items.length && lane < allowed()) await fn(items[i++]!);
    }),
  );
}

export async function tenantsSection(opts: {
  sim: SimProcess;
  log: (m: string) => void;
  tenants: number;
  intervalMinutes: number;
  observeMs: number;
  connectBudgetMs: number;
}): Promise<Figure[]> {
  const { sim, log, tenants } = opts;
  const started = Date.now();
  const env = serviceEnv(sim.env);
  const stack = await benchStack(env);
  // Production-like worker: the prebuilt bundle instead of bundling in-process (webpack's heap would count as RSS).
  // BENCH_TENANT_WORKER=dev runs the development worker instead (bundles at start-up; RSS then includes webpack).
  const production = process.env.BENCH_TENANT_WORKER !== 'dev';
  if (production) {
    // `npm run build`: the compiled worker (lib/) and the prebuilt workflow bundle, run on plain Node.
    await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
      cwd: REPO_ROOT,
    }).catch((err: { stdout?: string }) => {
      throw new Error(`compiling the worker failed: ${String(err.stdout ?? err).slice(-2000)}`);
    });
    const build = spawnTs('scripts/build-workflow-bundle.ts', env, { label: 'bundle' });
    const built = await build.exited;
    if (built !== 0) throw new Error(`building the workflow bundle failed: ${build.tail()}`);
  }
  // The worker logs process.memoryUsage() and its cache size every 15 s (WORKER_MEMORY_LOG_SECONDS): the report says
  // what the RSS is made of at its peak (JS heap, external buffers, the rest = native: V8 code, the Rust core, threads).
  const memory: MemorySample[] = [];
  const onWorkerLine = (line: string) => {
    if (!line.includes('worker memory')) return;
    try {
      const m = (JSON.parse(line) as { memory?: MemorySample }).memory;
      if (m) memory.push({ ...m, at: Date.now() });
    } catch {
      /* not a JSON log line */
    }
  };
  const workerEnv = {
    ...env,
    WORKER_MEMORY_LOG_SECONDS: '15',
    ...WORKER_PROCESS_ENV,
  };
  const worker = production
    ? await startWorkerProcess({ ...workerEnv, NODE_ENV: 'production' }, 120_000, 'lib/worker.js', onWorkerLine)
    : await startWorkerProcess(workerEnv, 120_000, undefined, onWorkerLine);
  const section = 'tenants';
  const createdIds: string[] = [];
  try {
    const ids = Array.from({ length: tenants }, (_, i) => `${uniqueName('t')}-${i}`);
    const target = {
      client: stack.client,
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      simAdminUrl: `${sim.url}/__admin`,
    };
    let connected = 0;
    let failed = 0;
    let retried = 0;
    const connectedIds: string[] = [];
    let stoppedBy: 'time' | 'failures' | null = null;
    const failures: string[] = [];
    const connectDeadline = started + opts.connectBudgetMs;
    // Connecting is latency-bound (simulator round trips, workflow start, status polls, the code-exchange update), so it
    // runs `width` at a time; every consent still goes through the workflow and the simulator.
    // Default 8: at 32 the shared dev server (SQLite) answered "shard status unknown" / "Namespace not found" and then
    // stayed broken (GetNamespace "interrupted (9)") until restarted. Each failure halves the width (never below 2).
    const width = Math.max(1, Number(process.env.BENCH_TENANT_CONNECT_CONCURRENCY ?? 8) || 8);
    let allowed = width;
    const maxFailures = Math.max(5, Math.ceil(tenants * 0.05));
    const connectRss: number[] = [];
    const t0 = Date.now();
    let lastLog = t0;
    await pool(
      ids,
      width,
      async (tenantId) => {
        if (stoppedBy) return;
        if (Date.now() > connectDeadline) {
          stoppedBy = 'time';
          return;
        }
        // A consent that fails under load (e.g. "Failed to query Workflow" from a busy dev server) is retried once as a
        // new tenant, so the section measures the tenant count it asked for; the failed one stays (and is cleaned up).
        for (let attempt = 0; attempt < 2; attempt++) {
          const id = attempt === 0 ? tenantId : `${tenantId}-r${attempt}`;
          createdIds.push(id);
          try {
            const u = (await sim.admin
              .post('users', { json: { provider: P, partitions: 1, customersPerPartition: 10 } })
              .json()) as { id: string };
            await connectTenant(target, {
              tenantId: id,
              provider: P,
              userId: u.id,
              input: { sync: { intervalMinutes: opts.intervalMinutes } },
            });
            connected++;
            connectedIds.push(id);
            if (attempt > 0) retried++;
            break;
          } catch (err) {
            // One slow or failed consent must not throw away the section: count it, keep going, stop only when many fail.
            failed++;
            if (failures.length < 3) failures.push(`${id}: ${(err as Error).message.slice(0, 200)}`);
            if (allowed > 2) {
              allowed = Math.max(2, Math.floor(allowed / 2));
              log(
                `tenants: connecting ${id} failed (${(err as Error).message.slice(0, 200)}); now ${allowed} at a time`,
              );
            }
            if (failed >= maxFailures && !stoppedBy) {
              stoppedBy = 'failures';
              log(`tenants: stopping after ${failed} failed connections; worker output: ${worker.tail().slice(-1500)}`);
            }
            if (stoppedBy) break;
          }
        }
        if (Date.now() - lastLog > 15_000) {
          lastLog = Date.now();
          const s = procStats(worker.pid);
          if (s) connectRss.push(s.rssBytes);
          const secs = (Date.now() - t0) / 1000;
          log(
            `tenants: ${connected}/${tenants} connected (${failed} failed) in ${secs.toFixed(0)} s, ${((secs * 1000) / Math.max(1, connected)).toFixed(0)} ms/tenant at ${allowed} in parallel, worker RSS ${s ? fmt.mb(s.rssBytes) : '?'}`,
          );
        }
      },
      () => allowed,
    );
    const connectSecs = (Date.now() - t0) / 1000;
    const perTenantMs = (connectSecs * 1000) / Math.max(1, connected);
    log(
      `tenants: ${connected} connected (${failed} failed) in ${connectSecs.toFixed(0)} s = ${perTenantMs.toFixed(0)} ms/tenant at up to ${width} in parallel (${allowed} at the end)${stoppedBy ? `, stopped by ${stoppedBy}` : ''}`,
    );
    if (connected === 0) throw new Error(`no tenant connected (${failed} failed: ${failures.join('; ')})`);

    // Observe the steady state.
    const observeMs = opts.observeMs;
    const observeStart = Date.now();
    const cpu0 = procStats(worker.pid);
    const rss: number[] = [];
    while (Date.now() - observeStart < observeMs) {
      const s = procStats(worker.pid);
      if (s) rss.push(s.rssBytes);
      await sleep(5_000);
    }
    const cpu1 = procStats(worker.pid);
    const observedSecs = (Date.now() - observeStart) / 1000;
    const cpuShare = cpu0 && cpu1 ? (cpu1.cpuSeconds - cpu0.cpuSeconds) / observedSecs : Number.NaN;

    // Schedule lag, per run: scheduled → the server starts it (the server's own start lag), and started → finished
    // (what our worker adds beyond that: workflow tasks, plan, the partition sync, the token read, the report).
    const startLag: number[] = [];
    const beyond: number[] = [];
    let runs = 0;
    let failedRuns = 0;
    let describeFailed = 0;
    // A sample of tenants is enough for the distribution, and describing hundreds of schedules is slow on the dev server.
    const sample = connectedIds.slice(0, 100);
    let missedCatchup = 0;
    let skippedOverlap = 0;
    /** Seconds of the window in which each sampled schedule could fire (its regular runs begin at `spec.startAt`). */
    let firingSecs = 0;
    const observeEnd = observeStart + observedSecs * 1000;
    await pool(sample, 8, async (tenantId) => {
      const sched = await stack.client.schedule
        .getHandle(syncScheduleId(P, tenantId))
        .describe()
        .catch(() => {
          describeFailed++;
          return null;
        });
      // Since creation, not only in the window: a run the server dropped is as much a miss as a late one.
      const from = Math.max(observeStart, sched?.spec.startAt?.getTime() ?? 0);
      firingSecs += Math.max(0, observeEnd - from) / 1000;
      missedCatchup += sched?.info.numActionsMissedCatchupWindow ?? 0;
      skippedOverlap += sched?.info.numActionsSkippedOverlap ?? 0;
      for (const a of sched?.info.recentActions ?? []) {
        if (a.scheduledAt.getTime() < observeStart) continue;
        runs++;
        startLag.push(a.takenAt.getTime() - a.scheduledAt.getTime());
        const d = await stack.client.workflow
          .getHandle(a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId)
          .describe()
          .catch(() => null);
        if (d?.closeTime) beyond.push(d.closeTime.getTime() - Math.max(a.takenAt.getTime(), d.startTime.getTime()));
        if (d && d.status.name !== 'COMPLETED' && d.status.name !== 'RUNNING') failedRuns++;
      }
    });
    const expected = Math.round(firingSecs / 60 / opts.intervalMinutes);
    let tuning = 'worker defaults';
    try {
      tuning = Object.entries(workerTuning(parseConfig({ ...process.env, ...env })))
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(', ');
      tuning += `; process: NODE_OPTIONS="${WORKER_PROCESS_ENV.NODE_OPTIONS}", MALLOC_ARENA_MAX=${WORKER_PROCESS_ENV.MALLOC_ARENA_MAX}`;
    } catch {
      /* the worker's own config is what counts; this is only the report */
    }
    const perHour = (connected * 60) / opts.intervalMinutes;
    const rssMax = rss.length ? Math.max(...rss) : Number.NaN;
    const beyondP99 = beyond.length ? percentile(beyond, 99) : Number.NaN;
    return [
      {
        section,
        name: `${fmt.int(connected)} tenants on one worker, ${opts.intervalMinutes}-minute schedules: schedule lag p99 beyond the server's own start lag`,
        ours: beyond.length
          ? `p50 ${fmt.ms(percentile(beyond, 50))}, p99 ${fmt.ms(beyondP99)} from the server starting a run to its end`
          : '—',
        reference: startLag.length
          ? `server start lag p50 ${fmt.ms(percentile(startLag, 50))}, p99 ${fmt.ms(percentile(startLag, 99))}`
          : '—',
        target: '≤ 60 s',
        met: beyond.length && connected >= 1000 ? beyondP99 <= 60_000 : null,
        note: `sample of ${sample.length} tenants: ${runs} scheduled runs observed in ${Math.round(observedSecs)} s (≈${expected} expected), ${beyond.length} finished, ${failedRuns} failed/terminated, since creation ${missedCatchup} action(s) missed the 1-minute catch-up window and ${skippedOverlap} were skipped as overlapping (schedules fire at a per-tenant offset in the interval)${describeFailed ? `, ${describeFailed} schedules could not be described` : ''}; each run = plan activity + one partition sync (10 customers, incremental after the first) + token read + syncReport signal. ${fmt.int(connected)} tenants every ${opts.intervalMinutes} min = ${fmt.int(perHour)} runs/h, the run rate of ${fmt.int(perHour)} hourly tenants (live connection workflows: ${fmt.int(connected)}). Connecting them through consent (up to ${width} at a time, ${allowed} at the end) took ${connectSecs.toFixed(0)} s (${perTenantMs.toFixed(0)} ms per tenant; ${failed} consent(s) failed under load, ${retried} of them retried as a new tenant and connected; worker RSS while connecting up to ${connectRss.length ? fmt.mb(Math.max(...connectRss)) : '?'})${connected < tenants ? ` — ${fmt.int(tenants)} asked, ${fmt.int(connected)} connected, ${failed} failed${stoppedBy === 'time' ? ', stopped at the connect time limit' : stoppedBy === 'failures' ? ', stopped after too many failures' : ''}${failures.length ? ` (first: ${failures.join('; ')})` : ''}; figures are for ${fmt.int(connected)} tenants and are judged only at ≥ 1,000; at this rate ${fmt.int(tenants)} would need ≈${Math.round((perTenantMs * tenants) / 60_000)} min of connecting (connect budget was ${Math.round(opts.connectBudgetMs / 60_000)} min; BENCH_BUDGET_MIN raises it)` : ''}. Worker: ${production ? 'NODE_ENV=production with the prebuilt workflow bundle' : 'development (bundles workflows in-process at start-up)'}, ${tuning}`,
      },
      {
        section,
        name: `${fmt.int(connected)} tenants on one worker: worker RSS`,
        ours: `RSS max ${rss.length ? fmt.mb(rssMax) : '?'} (median ${rss.length ? fmt.mb(percentile(rss, 50)) : '?'}), CPU ${Number.isFinite(cpuShare) ? `${fmt.num(cpuShare * 100, 0)}% of one core` : '?'}`,
        reference: `machine: 2 cores shared with Temporal dev server, FerretDB/PostgreSQL, simulator, bench`,
        target: '≤ 512 MB',
        met: rss.length && connected >= 1000 ? rssMax <= 512 * 1024 * 1024 : null,
        note: `RSS sampled every 5 s from /proc over the ${Math.round(observedSecs)}-s observation window (after all tenants were connected); CPU = (utime+stime delta) / wall time; judged only at ≥ 1,000 tenants; ${memoryAtPeak(memory, observeStart)}`,
      },
    ];
  } finally {
    // Leave the shared server as we found it: N schedules firing every few minutes on a task queue nobody polls (and N
    // open connection workflows) would load it for everyone after the bench. Bounded: at most 3 minutes.
    const cleanupDeadline = Date.now() + 180_000;
    let cleaned = 0;
    await pool(createdIds, 8, async (tenantId) => {
      if (Date.now() > cleanupDeadline) return;
      await stack.client.schedule
        .getHandle(syncScheduleId(P, tenantId))
        .delete()
        .catch(() => {});
      await stack.client.workflow
        .getHandle(connectionWorkflowId(P, tenantId))
        .terminate('bench cleanup')
        .catch(() => {});
      cleaned++;
    }).catch(() => {});
    if (createdIds.length)
      log(`tenants: cleaned up ${cleaned}/${createdIds.length} schedules and connection workflows`);
    await worker.stop(5_000);
    await stack.close();
  }
}
