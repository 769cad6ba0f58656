/**
 * Token-lifecycle figures against the real `tenantConnection` workflow on a worker process (src/worker.ts):
 *  - refresh storm: 1,000 concurrent getAccessToken callers (all presenting the current version as rejected, the
 *    "everyone got a 401 at once" case) → refreshes at the simulator, latency p50/p99 against one uncontended call,
 *    and the client-side retries Temporal's 10-updates-in-flight limit forced;
 *  - refresh rate under continuous use with real 300-s tokens (one read per second, each asking getAccessToken first)
 *    against a "refresh when within 15 minutes of expiry on every read" client on the same simulator, same window;
 *  - Temporal cost: history events of an idle tenant per keep-alive cycle (refresh-token life compressed to a few
 *    minutes at the simulator, then scaled to Sage's 31-day life) and of a tenant synced every minute (then scaled to
 *    hourly), from the real histories; and the largest history length seen.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isGrpcServiceError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import got from 'got';
import { connectionWorkflowId, getAccessTokenUpdate } from '../src/messages.js';
import { acquireAccessToken } from '../src/tokens/access.js';
import { openTokens, readTokenDoc } from '../src/tokens/store.js';
import { keyRingFromConfig } from '../src/temporal/data-converter.js';
import { DEMO_APPS } from '../src/simulator/apps.js';
import { connectTenant } from '../test/helpers/consent.js';
import { fmt, percentile, type Figure } from './lib/report.js';
import { startSimulatorProcess, startWorkerProcess, type Child, type SimProcess } from './lib/processes.js';
import { benchStack, serviceEnv, uniqueName, type BenchStack } from './lib/stack.js';

const P = 'sage-accounting' as const;
/** A storm caller stops retrying after this long (keeps the bench inside its budget; reported). */
const STORM_CALLER_DEADLINE_MS = 90_000;

async function createUser(sim: SimProcess, customers = 5): Promise<string> {
  const u = (await sim.admin.post('users', { json: { provider: P, partitions: 1, customersPerPartition: customers } }).json()) as { id: string };
  return u.id;
}

async function counters(sim: SimProcess) {
  return (await sim.admin.get('counters').json()) as { refreshes: number; reusedRefreshTokens: number; refreshesByGrant: Record<string, number> };
}

/** Refreshes Sage saw on every grant of one simulator user (one user per tenant in the bench). */
async function refreshesOfUser(sim: SimProcess, userId: string): Promise<number> {
  const g = (await sim.admin.get('grants', { searchParams: { provider: P, userId } }).json()) as { grants: { refreshCount: number }[] };
  return g.grants.reduce((a, x) => a + x.refreshCount, 0);
}

/** Every run of a workflow id (continue-as-new chains included) with its history length. */
export async function historyLengths(client: Client, query: string): Promise<{ workflowId: string; runId: string; historyLength: number }[]> {
  const out: { workflowId: string; runId: string; historyLength: number }[] = [];
  for await (const w of client.workflow.list({ query })) out.push({ workflowId: w.workflowId, runId: w.runId, historyLength: w.historyLength });
  return out;
}

/** History length of every run on a task queue; running runs are described (visibility only updates them lazily). */
async function allHistoryLengths(client: Client, taskQueue: string): Promise<{ workflowId: string; historyLength: number }[]> {
  const out: { workflowId: string; historyLength: number }[] = [];
  for await (const w of client.workflow.list({ query: `TaskQueue = "${taskQueue}"` })) {
    if (w.status.name !== 'RUNNING') out.push({ workflowId: w.workflowId, historyLength: w.historyLength });
    else {
      const d = await client.workflow.getHandle(w.workflowId, w.runId).describe().catch(() => null);
      out.push({ workflowId: w.workflowId, historyLength: d?.historyLength ?? w.historyLength });
    }
  }
  return out;
}

async function totalEvents(client: Client, workflowId: string): Promise<number> {
  // Visibility lags a little behind; the current run's length comes from its own history.
  let total = 0;
  const runs = await historyLengths(client, `WorkflowId = "${workflowId}"`);
  const current = await client.workflow.getHandle(workflowId).describe();
  for (const r of runs) total += r.runId === current.runId ? 0 : r.historyLength;
  const hist = await client.workflow.getHandle(workflowId).fetchHistory();
  return total + (hist.events?.length ?? 0);
}

/**
 * What a real caller retries: the workflow's own RetryLater, RESOURCE_EXHAUSTED (Temporal's 10 updates in flight per
 * workflow), NOT_FOUND (a run that just continued as new) and UNAVAILABLE "workflow update was aborted" (the server
 * drops in-flight updates when their workflow task is lost under contention or the run continues as new).
 */
function retryKind(err: unknown): string | null {
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) return err.cause.type === 'RetryLater' ? 'RetryLater' : null;
  const e = isGrpcServiceError(err) ? err : isGrpcServiceError((err as { cause?: unknown })?.cause) ? (err as { cause: unknown }).cause : null;
  if (e === null || !isGrpcServiceError(e)) return null;
  return ({ 5: 'NOT_FOUND', 8: 'RESOURCE_EXHAUSTED', 14: 'UNAVAILABLE' } as Record<number, string>)[e.code ?? -1] ?? null;
}

/**
 * A client whose workflow handles count every `executeUpdate` attempt and its outcome, so the storm can go through the
 * real caller API (acquireAccessToken, with whatever retrying and coalescing it does) and still report retries.
 */
function countingClient(client: Client, tally: Map<string, number>): Client {
  const bump = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
  const workflow = new Proxy(client.workflow, {
    get(target, prop, receiver) {
      if (prop !== 'getHandle') return Reflect.get(target, prop, receiver) as unknown;
      return (...args: Parameters<typeof target.getHandle>) => {
        const handle = target.getHandle(...args);
        return new Proxy(handle, {
          get(h, hp, hr) {
            if (hp !== 'executeUpdate') return Reflect.get(h, hp, hr) as unknown;
            return async (...uargs: Parameters<typeof h.executeUpdate>) => {
              bump('attempts');
              try {
                return await h.executeUpdate(...uargs);
              } catch (err) {
                bump(retryKind(err) ?? 'other error');
                throw err;
              }
            };
          },
        });
      };
    },
  });
  return new Proxy(client, { get: (c, prop, r) => (prop === 'workflow' ? workflow : (Reflect.get(c, prop, r) as unknown)) });
}

async function stormFigures(stack: BenchStack, sim: SimProcess, log: (m: string) => void): Promise<Figure[]> {
  const tenantId = uniqueName('storm');
  const userId = await createUser(sim);
  await connectTenant({ client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` }, { tenantId, provider: P, userId, input: { sync: { intervalMinutes: 7 * 24 * 60 } } });
  const wfId = connectionWorkflowId(P, tenantId);
  const tally = new Map<string, number>();
  const deps = { client: countingClient(stack.client, tally), mongo: stack.mongo, config: stack.config };
  const call = async (opts: { rejectedTokenVersion?: number }) => {
    const t = performance.now();
    try {
      await acquireAccessToken(deps, { tenantId, provider: P }, { ...opts, deadlineMs: STORM_CALLER_DEADLINE_MS });
      return { ms: performance.now() - t, error: null as string | null };
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause;
      return { ms: performance.now() - t, error: `${(err as Error).message}${cause?.message ? `: ${cause.message}` : ''}`.slice(0, 200) };
    }
  };
  // Uncontended: sequential calls that need no refresh.
  const solo: number[] = [];
  for (let i = 0; i < 20; i++) solo.push((await call({})).ms);
  const soloP50 = percentile(solo, 50);
  const before = await refreshesOfUser(sim, userId);
  const reusedBefore = (await counters(sim)).reusedRefreshTokens;
  const current = (await stack.client.workflow.getHandle(wfId).executeUpdate(getAccessTokenUpdate, { args: [{}] })).tokenVersion;
  const N = 1000;
  log(`storm: ${N} concurrent acquireAccessToken (rejectedTokenVersion=${current})`);
  tally.clear();
  const t = performance.now();
  const results = await Promise.all(Array.from({ length: N }, () => call({ rejectedTokenVersion: current })));
  const wall = performance.now() - t;
  const refreshes = (await refreshesOfUser(sim, userId)) - before;
  const reused = (await counters(sim)).reusedRefreshTokens - reusedBefore;
  const ok = results.filter((r) => r.error === null);
  const lat = ok.map((r) => r.ms);
  const failed = results.filter((r) => r.error !== null);
  const attempts = tally.get('attempts') ?? 0;
  const rejections = [...tally].filter(([k]) => k !== 'attempts');
  const p50 = percentile(lat, 50);
  const p99 = percentile(lat, 99);
  const firstErrors = [...new Set(failed.map((f) => f.error))].slice(0, 2).join(' | ');
  return [
    {
      section: 'refresh storm',
      name: `${N} concurrent getAccessToken (current version rejected): refreshes at Sage`,
      ours: `${refreshes} refresh(es), ${reused} reused refresh tokens, ${ok.length} callers served, ${failed.length} failed`,
      reference: `${N} callers (a per-caller refresh would be ${N})`,
      target: '1 refresh, 0 failed',
      met: refreshes === 1 && failed.length === 0,
      note: `callers use acquireAccessToken (the service's own client: update + token-store read, its own retry of RetryLater / RESOURCE_EXHAUSTED with jittered backoff), each with a ${STORM_CALLER_DEADLINE_MS / 1000}-s deadline (bench budget); the ${N} finished in ${fmt.ms(wall)}; ${attempts} update attempts reached Temporal for ${N} callers; rejections: ${rejections.map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}${failed.length ? `; failures: ${firstErrors}` : ''}`,
    },
    {
      section: 'refresh storm',
      name: 'latency p50 / p99 of a served storm caller vs one uncontended call',
      ours: lat.length ? `p50 ${fmt.ms(p50)}, p99 ${fmt.ms(p99)} (${lat.length} served)` : 'no caller served',
      reference: `uncontended ${fmt.ms(soloP50)} (median of 20 sequential calls, no refresh)`,
      ...(lat.length ? { ratio: `p50 ${fmt.ratio(p50 / soloP50)}, p99 ${fmt.ratio(p99 / soloP50)}` } : {}),
      note: 'a call = acquireAccessToken: the getAccessToken update (with its retries) + reading and decrypting the token version from the store',
    },
  ];
}

/** The peer policy: before every read, refresh if the token expires within 15 minutes (always, for 300-s tokens). */
async function naiveReader(sim: SimProcess, userId: string, stop: () => boolean): Promise<{ reads: number; refreshes: number; errors: number }> {
  const grant = (await sim.admin.post('grants', { json: { provider: P, userId } }).json()) as {
    token: { access_token: string; refresh_token: string; expires_in: number };
    partitions?: unknown;
    user: { partitions: { partitionId: string }[] };
  };
  let access = grant.token.access_token;
  let refresh = grant.token.refresh_token;
  let expiresAt = Date.now() + grant.token.expires_in * 1000;
  const business = grant.user.partitions[0]!.partitionId;
  let reads = 0;
  let refreshes = 0;
  let errors = 0;
  while (!stop()) {
    try {
      if (expiresAt - Date.now() < 15 * 60_000) {
        const t = (await got
          .post(`${sim.url}/sage-accounting/token`, {
            form: { grant_type: 'refresh_token', refresh_token: refresh, client_id: DEMO_APPS.sageAccounting.clientId, client_secret: DEMO_APPS.sageAccounting.clientSecret },
          })
          .json()) as { access_token: string; refresh_token: string; expires_in: number };
        access = t.access_token;
        refresh = t.refresh_token;
        expiresAt = Date.now() + t.expires_in * 1000;
        refreshes++;
      }
      await got(`${sim.url}/sage-accounting/v3.1/contacts?items_per_page=1`, { headers: { authorization: `Bearer ${access}`, 'x-business': business } });
      reads++;
    } catch {
      errors++;
    }
    await sleep(1000);
  }
  return { reads, refreshes, errors };
}

/** Ours: before every read ask the connection workflow (acquireAccessToken); on a 401, ask again rejecting that version. */
async function oursReader(stack: BenchStack, sim: SimProcess, tenantId: string, business: string, stop: () => boolean): Promise<{ reads: number; errors: number; unauthorized: number }> {
  let reads = 0;
  let errors = 0;
  let unauthorized = 0;
  while (!stop()) {
    try {
      let tok = await acquireAccessToken(stack, { tenantId, provider: P });
      let res = await got(`${sim.url}/sage-accounting/v3.1/contacts?items_per_page=1`, { headers: { authorization: `Bearer ${tok.accessToken}`, 'x-business': business }, throwHttpErrors: false });
      if (res.statusCode === 401) {
        unauthorized++;
        tok = await acquireAccessToken(stack, { tenantId, provider: P }, { rejectedTokenVersion: tok.tokenVersion });
        res = await got(`${sim.url}/sage-accounting/v3.1/contacts?items_per_page=1`, { headers: { authorization: `Bearer ${tok.accessToken}`, 'x-business': business }, throwHttpErrors: false });
      }
      if (res.statusCode === 200) reads++;
      else errors++;
    } catch {
      errors++;
    }
    await sleep(1000);
  }
  return { reads, errors, unauthorized };
}

export async function tokenSections(opts: { sim: SimProcess; log: (m: string) => void; budgetMs: number }): Promise<Figure[]> {
  const { sim, log } = opts;
  const figures: Figure[] = [];
  const env = serviceEnv(sim.env);
  const stack = await benchStack(env);
  // The idle tenant needs a short refresh-token life (to see a keep-alive cycle in minutes): its own simulator and worker.
  const idleSim = await startSimulatorProcess();
  const idleEnv = serviceEnv(idleSim.env);
  const idleStack = await benchStack(idleEnv);
  const workers: Child[] = [];
  try {
    log('tokens: starting 2 worker processes');
    workers.push(...(await Promise.all([startWorkerProcess(env), startWorkerProcess(idleEnv)])));
    const target = { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` };

    // --- idle tenant, compressed refresh-token life
    const IDLE_REFRESH_TTL = 150;
    await idleSim.admin.post('settings', { json: { sageAccounting: { refreshTokenTtlSeconds: IDLE_REFRESH_TTL } } });
    const idleUser = await createUser(idleSim);
    const idleTenant = uniqueName('idle');
    const idleWf = connectionWorkflowId(P, idleTenant);
    await connectTenant(
      { client: idleStack.client, taskQueue: idleStack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${idleSim.url}/__admin` },
      { tenantId: idleTenant, provider: P, userId: idleUser, input: { sync: { intervalMinutes: 7 * 24 * 60 } } },
    );
    const idleStart = await totalEvents(idleStack.client, idleWf);
    const idleT0 = Date.now();

    // --- continuous use: ours vs the 15-minute policy, same window
    const oursUser = await createUser(sim);
    const oursTenant = uniqueName('rate');
    const oursStatus = await connectTenant(target, { tenantId: oursTenant, provider: P, userId: oursUser, input: { sync: { intervalMinutes: 7 * 24 * 60 } } });
    const naiveUser = await createUser(sim);
    const oursRefreshBefore = await refreshesOfUser(sim, oursUser);
    const oursEventsBefore = await totalEvents(stack.client, connectionWorkflowId(P, oursTenant));
    let stopped = false;
    const windowStart = Date.now();
    const ours = oursReader(stack, sim, oursTenant, oursStatus.partitions[0]!.id, () => stopped);
    const naive = naiveReader(sim, naiveUser, () => stopped);

    // --- a tenant synced every minute (the schedule's shortest interval)
    const syncUser = await createUser(sim, 50);
    const syncTenant = uniqueName('hourly');
    const syncWf = connectionWorkflowId(P, syncTenant);
    await connectTenant(target, { tenantId: syncTenant, provider: P, userId: syncUser, input: { sync: { intervalMinutes: 1 } } });
    const syncEventsBefore = await totalEvents(stack.client, syncWf);
    const syncT0 = Date.now();

    // --- the storm, while the window runs
    figures.push(...(await stormFigures(stack, sim, log)));

    // At least 250 s: ours refreshes 75 s before a 300-s token expires, so a shorter window can show no refresh at all.
    const windowMs = Math.max(250_000, opts.budgetMs - (Date.now() - windowStart) - 30_000);
    const endAt = windowStart + windowMs;
    log(`tokens: continuous-use window of ${Math.round(windowMs / 1000)} s`);
    while (Date.now() < endAt) await sleep(1000);
    stopped = true;
    const [o, n] = await Promise.all([ours, naive]);
    const windowSecs = (Date.now() - windowStart) / 1000;
    const oursRefreshes = (await refreshesOfUser(sim, oursUser)) - oursRefreshBefore;
    const oursEvents = (await totalEvents(stack.client, connectionWorkflowId(P, oursTenant))) - oursEventsBefore;
    const perHour = (x: number) => (x * 3600) / windowSecs;
    figures.push({
      section: 'refresh rate',
      name: 'refreshes per hour of continuous use, 300-s tokens (1 read/s)',
      ours: `${fmt.num(perHour(oursRefreshes))}/h (${oursRefreshes} in ${Math.round(windowSecs)} s, ${o.reads} reads, ${o.unauthorized} 401s, ${o.errors} errors)`,
      reference: `refresh-within-15-min policy: ${fmt.num(perHour(n.refreshes))}/h (${n.refreshes} in ${Math.round(windowSecs)} s, ${n.reads} reads)`,
      ratio: oursRefreshes > 0 ? fmt.ratio(n.refreshes / oursRefreshes) : undefined,
      note: `real 300-s tokens, not compressed (the margin has a 30-s floor, so shrinking token life would distort it); both clients ran in the same window against the same simulator; refreshes counted at the simulator per grant. Ours: the workflow refreshes when 25% of the token life (75 s) is left, so about one refresh per 225 s = 16/h at steady state; a window of a few minutes shows ${oursRefreshes}. History events of that connection in the window: ${oursEvents} (each getAccessToken is an update)`,
    });

    // --- idle tenant: events per keep-alive cycle, scaled to 31-day refresh tokens
    const idleEvents = (await totalEvents(idleStack.client, idleWf)) - idleStart;
    const idleSecs = (Date.now() - idleT0) / 1000;
    const idleRefreshes = await refreshesOfUser(idleSim, idleUser);
    if (idleRefreshes > 0) {
      const perCycle = idleEvents / idleRefreshes;
      const cycleDays = 31 * (1 - 0.2); // keep-alive when 20% of the refresh token's life is left
      const perDay = perCycle / cycleDays;
      figures.push({
        section: 'temporal cost',
        name: 'history events per idle tenant-day (Sage Accounting)',
        ours: `${fmt.num(perDay, 2)} events/day`,
        reference: `${fmt.num(perCycle)} events per keep-alive cycle, ${idleRefreshes} cycle(s) seen in ${Math.round(idleSecs)} s`,
        target: '≤ 5',
        met: perDay <= 5,
        note: `refresh-token life compressed to ${IDLE_REFRESH_TTL} s at the simulator; the idle connection woke only for keep-alive refreshes; events counted from the real history (all runs), scaled to one cycle per ${cycleDays.toFixed(1)} days (31-day refresh token, keep-alive at 80% of its life)`,
      });
    } else {
      figures.push({
        section: 'temporal cost',
        name: 'history events per idle tenant-day (Sage Accounting)',
        ours: idleEvents === 0 ? '0 events' : `${idleEvents} events`,
        reference: `in ${Math.round(idleSecs)} s with no keep-alive refresh`,
        target: '≤ 5',
        met: null,
        note: `no keep-alive refresh happened in the window although the refresh-token life was ${IDLE_REFRESH_TTL} s: cannot scale a cycle`,
      });
    }

    // --- tenant synced every minute, scaled to hourly
    const syncSecs = (Date.now() - syncT0) / 1000;
    const runs = await historyLengths(stack.client, `TenantId = "${syncTenant}" AND WorkflowType = "syncCustomers"`);
    const syncRunEvents = runs.reduce((a, r) => a + r.historyLength, 0);
    const connEvents = (await totalEvents(stack.client, syncWf)) - syncEventsBefore;
    if (runs.length > 0) {
      const perRun = (syncRunEvents + connEvents) / runs.length;
      const refreshCost = idleRefreshes > 0 ? idleEvents / idleRefreshes : 0;
      const perDay = 24 * (perRun + refreshCost);
      figures.push({
        section: 'temporal cost',
        name: 'history events per hourly-synced tenant-day (1 partition)',
        ours: `${fmt.int(perDay)} events/day`,
        reference: `${fmt.num(perRun)} events per sync run (${runs.length} runs of a 1-minute schedule in ${Math.round(syncSecs)} s) + ${fmt.num(refreshCost)} per token refresh`,
        note: 'per run = syncCustomers history + what the run added to the connection history (getAccessToken update, syncReport signal); an hourly run always needs a fresh 300-s token, so one refresh per run is added (its cost measured on the idle tenant’s keep-alive refresh); × 24',
      });
    } else {
      figures.push({ section: 'temporal cost', name: 'history events per hourly-synced tenant-day', ours: null, reference: null, note: `not measured: no sync run completed in ${Math.round(syncSecs)} s` });
    }

    const all = [
      ...(await allHistoryLengths(stack.client, stack.config.TEMPORAL_TASK_QUEUE)),
      ...(await allHistoryLengths(idleStack.client, idleStack.config.TEMPORAL_TASK_QUEUE)),
    ];
    const largest = all.reduce((m, r) => (r.historyLength > m.historyLength ? r : m), { workflowId: '-', historyLength: 0 });
    figures.push({
      section: 'temporal cost',
      name: 'largest history length seen (this section)',
      ours: `${fmt.int(largest.historyLength)} events`,
      reference: 'Temporal warns at 10,240 events and continue-as-new is suggested; hard limit 51,200',
      note: `${largest.workflowId} across ${all.length} runs (storm tenant included: 1,000 updates trigger continue-as-new)`,
    });
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await stack.close();
    await idleStack.close();
    await idleSim.close();
  }
  return figures;
}
