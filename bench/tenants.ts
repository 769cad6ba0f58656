/**
 * Many connected tenants on ONE worker process (src/worker.ts): schedule lag p50/p99, worker RSS and CPU.
 *
 * Time is compressed by the schedule interval: every tenant syncs every minute (the shortest interval the input
 * allows) instead of every 15 minutes, so N tenants here put the sync load of 15 × N tenants on 15-minute schedules
 * on the worker, while the number of live connection workflows (memory) is N. Tenants are connected through the real
 * consent flow (simulator consent + completeAuthorization), 8 at a time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connectTenant } from '../test/helpers/consent.js';
import { fmt, percentile, type Figure } from './lib/report.js';
import { procStats, startWorkerProcess, type SimProcess } from './lib/processes.js';
import { benchStack, serviceEnv, uniqueName } from './lib/stack.js';

const P = 'sage-accounting' as const;

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

export async function tenantsSection(opts: { sim: SimProcess; log: (m: string) => void; tenants: number; budgetMs: number }): Promise<Figure[]> {
  const { sim, log, tenants } = opts;
  const started = Date.now();
  const env = serviceEnv(sim.env);
  const stack = await benchStack(env);
  const worker = await startWorkerProcess(env);
  const section = 'tenants';
  try {
    const ids = Array.from({ length: tenants }, (_, i) => `${uniqueName('t')}-${i}`);
    const target = { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` };
    let connected = 0;
    const connectDeadline = started + opts.budgetMs * 0.45;
    const t0 = Date.now();
    await pool(ids, 8, async (tenantId) => {
      if (Date.now() > connectDeadline) return;
      const u = (await sim.admin.post('users', { json: { provider: P, partitions: 1, customersPerPartition: 10 } }).json()) as { id: string };
      await connectTenant(target, { tenantId, provider: P, userId: u.id, input: { sync: { intervalMinutes: 1 } } });
      connected++;
    });
    const connectSecs = (Date.now() - t0) / 1000;
    log(`tenants: ${connected} connected in ${connectSecs.toFixed(0)} s`);

    // Observe the steady state.
    const observeMs = Math.max(60_000, opts.budgetMs - (Date.now() - started) - 45_000);
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

    // Schedule lag: from each recent action's scheduled time to (a) the server starting the run, (b) the run finishing.
    const startLag: number[] = [];
    const finishLag: number[] = [];
    let runs = 0;
    let failedRuns = 0;
    // A sample of tenants is enough for the distribution, and describing hundreds of schedules is slow on the dev server.
    const sample = ids.slice(0, Math.min(connected, 40));
    await pool(sample, 8, async (tenantId) => {
      const sched = await stack.client.schedule.getHandle(`sage-sync:${P}:${tenantId}`).describe().catch(() => null);
      for (const a of sched?.info.recentActions ?? []) {
        if (a.scheduledAt.getTime() < observeStart) continue;
        runs++;
        startLag.push(a.takenAt.getTime() - a.scheduledAt.getTime());
        const d = await stack.client.workflow.getHandle(a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId).describe().catch(() => null);
        if (d?.closeTime) finishLag.push(d.closeTime.getTime() - a.scheduledAt.getTime());
        if (d && d.status.name !== 'COMPLETED' && d.status.name !== 'RUNNING') failedRuns++;
      }
    });
    const expected = Math.round((observedSecs / 60) * sample.length);
    return [
      {
        section,
        name: `${connected} connected tenants on one worker, 1-minute schedules (= ${fmt.int(connected * 15)} tenants on 15-minute schedules): schedule lag`,
        ours: finishLag.length ? `run finished p50 ${fmt.ms(percentile(finishLag, 50))}, p99 ${fmt.ms(percentile(finishLag, 99))} after its scheduled time` : '—',
        reference: startLag.length ? `server start lag p50 ${fmt.ms(percentile(startLag, 50))}, p99 ${fmt.ms(percentile(startLag, 99))}` : '—',
        note: `sample of ${sample.length} tenants: ${runs} scheduled runs observed in ${Math.round(observedSecs)} s (≈${expected} expected), ${finishLag.length} finished, ${failedRuns} failed/terminated; each run = plan activity + one partition sync (10 customers, incremental after the first) + getAccessToken + syncReport signal. Connecting ${connected} tenants through consent took ${connectSecs.toFixed(0)} s${connected < tenants ? ` (${tenants} asked; stopped at the time limit)` : ''}. The 1,000-tenant figure is not measured directly: N tenants at 1-minute intervals carry the sync load of 15 × N at 15 minutes, but only N live connection workflows`,
      },
      {
        section,
        name: `worker RSS and CPU with ${connected} tenants syncing every minute`,
        ours: `RSS max ${rss.length ? fmt.mb(Math.max(...rss)) : '?'} (median ${rss.length ? fmt.mb(percentile(rss, 50)) : '?'}), CPU ${Number.isFinite(cpuShare) ? `${fmt.num(cpuShare * 100, 0)}% of one core` : '?'}`,
        reference: `machine: 2 cores shared with Temporal dev server, FerretDB/PostgreSQL, simulator, bench`,
        note: 'RSS sampled every 5 s from /proc; CPU = (utime+stime delta) / wall time over the observation window',
      },
    ];
  } finally {
    await worker.stop(5_000);
    await stack.close();
  }
}
