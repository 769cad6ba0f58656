/**
 * Token-lifecycle figures against the real `tenantConnection` workflow on a worker process (src/worker.ts):
 *  - read storm: 1,000 concurrent callers of a token that is still valid (the read path: token store only) → p50/p99
 *    against one uncontended call, and the updates / history events that reached Temporal (should be 0);
 *  - refresh storm: 1,000 concurrent getAccessToken callers (all presenting the current version as rejected, the
 *    "everyone got a 401 at once" case) → refreshes at the simulator, latency p50/p99 against one uncontended call,
 *    and the client-side retries Temporal's 10-updates-in-flight limit forced;
 *  - refresh rate and history events per token read under continuous use with real 300-s tokens (one read per second
 *    through acquireAccessToken for BENCH_READ_WINDOW_S, default 900 s = 15 min, not compressed) against a "refresh
 *    when within 15 minutes of expiry on every read" client on the same simulator, same window;
 *  - Temporal cost: history events of an idle tenant per keep-alive cycle (refresh-token life compressed to a few
 *    minutes at the simulator, then scaled to Sage's 31-day life), and of a tenant synced every minute whose access
 *    tokens live 50 s (so every run needs a refresh, as an hourly run with 300-s tokens does), split into connection-
 *    workflow and sync-workflow events and scaled to 24 runs a day; and the largest history length seen.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isGrpcServiceError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import got from 'got';
import { connectionWorkflowId, getAccessTokenUpdate, type ConnectionStatus } from '../src/messages.js';
import proto from '@temporalio/proto';
import { acquireAccessToken } from '../src/tokens/access.js';
import { DEMO_APPS } from '../src/simulator/apps.js';
import { connectTenant, waitForStatus } from '../test/helpers/consent.js';
import { fmt, percentile, type Figure } from './lib/report.js';
import { startSimulatorProcess, startWorkerProcess, type Child, type SimProcess } from './lib/processes.js';
import { benchStack, serviceEnv, uniqueName, type BenchStack } from './lib/stack.js';

const P = 'sage-accounting' as const;
/** A storm caller stops retrying after this long (keeps the bench inside its budget; reported). */
const STORM_CALLER_DEADLINE_MS = 90_000;

async function createUser(sim: SimProcess, customers = 5): Promise<string> {
  const u = (await sim.admin
    .post('users', { json: { provider: P, partitions: 1, customersPerPartition: customers } })
    .json()) as { id: string };
  return u.id;
}

/** A new simulator user connected as tenant `prefix_…` through the real consent flow, with a weekly schedule. */
async function connectWeeklyTenant(
  stack: BenchStack,
  sim: SimProcess,
  prefix: string,
): Promise<{ tenantId: string; userId: string; wfId: string }> {
  const tenantId = uniqueName(prefix);
  const userId = await createUser(sim);
  await connectTenant(
    { client: stack.client, taskQueue: stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${sim.url}/__admin` },
    { tenantId, provider: P, userId, input: { sync: { intervalMinutes: 7 * 24 * 60 } } },
  );
  return { tenantId, userId, wfId: connectionWorkflowId(P, tenantId) };
}

async function counters(sim: SimProcess) {
  return (await sim.admin.get('counters').json()) as {
    refreshes: number;
    reusedRefreshTokens: number;
    refreshesByGrant: Record<string, number>;
  };
}

/** Refreshes Sage saw on every grant of one simulator user (one user per tenant in the bench). */
async function refreshesOfUser(sim: SimProcess, userId: string): Promise<number> {
  const g = (await sim.admin.get('grants', { searchParams: { provider: P, userId } }).json()) as {
    grants: { refreshCount: number }[];
  };
  return g.grants.reduce((a, x) => a + x.refreshCount, 0);
}

/** Every run of a workflow id (continue-as-new chains included) with its history length. */
export async function historyLengths(
  client: Client,
  query: string,
): Promise<{ workflowId: string; runId: string; historyLength: number }[]> {
  const out: { workflowId: string; runId: string; historyLength: number }[] = [];
  for await (const w of client.workflow.list({ query }))
    out.push({ workflowId: w.workflowId, runId: w.runId, historyLength: w.historyLength });
  return out;
}

/** History length of every run on a task queue; running runs are described (visibility only updates them lazily). */
async function allHistoryLengths(
  client: Client,
  taskQueue: string,
): Promise<{ workflowId: string; historyLength: number }[]> {
  const out: { workflowId: string; historyLength: number }[] = [];
  for await (const w of client.workflow.list({ query: `TaskQueue = "${taskQueue}"` })) {
    if (w.status.name !== 'RUNNING') out.push({ workflowId: w.workflowId, historyLength: w.historyLength });
    else {
      const d = await client.workflow
        .getHandle(w.workflowId, w.runId)
        .describe()
        .catch(() => null);
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

/** The schedule's first sync starts at consent; its report lands in the connection history. Wait for it (bounded). */
async function firstSyncReported(client: Client, workflowId: string): Promise<void> {
  const done = (s: ConnectionStatus) =>
    s.partitions.length > 0 && s.partitions.every((p) => s.lastSync[p.id] !== undefined);
  await waitForStatus(client, workflowId, done, 180_000).catch(() => {});
  await sleep(2_000); // its mirror activity is scheduled right after the signal
}

/** Event types of the current run's history from index `from` on (what a window added), most frequent first. */
async function eventTypesSince(client: Client, workflowId: string, from: number): Promise<string> {
  const hist = await client.workflow.getHandle(workflowId).fetchHistory();
  const counts = new Map<string, number>();
  for (const e of (hist.events ?? []).slice(from)) {
    const name = (proto.temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType))
      .replace(/^EVENT_TYPE_/, '')
      .toLowerCase();
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/**
 * What a real caller retries: the workflow's own RetryLater, RESOURCE_EXHAUSTED (Temporal's 10 updates in flight per
 * workflow), NOT_FOUND (a run that just continued as new) and UNAVAILABLE "workflow update was aborted" (the server
 * drops in-flight updates when their workflow task is lost under contention or the run continues as new).
 */
function retryKind(err: unknown): string | null {
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure)
    return err.cause.type === 'RetryLater' ? 'RetryLater' : null;
  const e = isGrpcServiceError(err)
    ? err
    : isGrpcServiceError((err as { cause?: unknown })?.cause)
      ? (err as { cause: unknown }).cause
      : null;
  if (e === null || !isGrpcServiceError(e)) return null;
  return (
    ({ 5: 'NOT_FOUND', 8: 'RESOURCE_EXHAUSTED', 14: 'UNAVAILABLE' } as Record<number, string>)[e.code ?? -1] ?? null
  );
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
  return new Proxy(client, {
    get: (c, prop, r) => (prop === 'workflow' ? workflow : (Reflect.get(c, prop, r) as unknown)),
  });
}

/** The read path under a crowd: N concurrent callers of a token that is still valid. */
async function readStormFigures(
  stack: BenchStack,
  sim: SimProcess,
  log: (m: string) => void,
  readers: number,
): Promise<Figure[]> {
  const { tenantId, userId, wfId } = await connectWeeklyTenant(stack, sim, 'reads');
  const tally = new Map<string, number>();
  const deps = { client: countingClient(stack.client, tally), mongo: stack.mongo, config: stack.config };
  const call = async () => {
    const t = performance.now();
    const r = await acquireAccessToken(deps, { tenantId, provider: P }, { minValidSeconds: 60 });
    return { ms: performance.now() - t, servedBy: r.servedBy, version: r.tokenVersion };
  };
  // Let the first sync (started at consent) report, so the history count below is not moved by it.
  await firstSyncReported(stack.client, wfId);
  for (let i = 0; i < 5; i++) await call(); // warm-up: driver pool, key ring
  const solo: number[] = [];
  for (let i = 0; i < 50; i++) solo.push((await call()).ms);
  const soloP50 = percentile(solo, 50);
  const refreshesBefore = await refreshesOfUser(sim, userId);
  const eventsBefore = await totalEvents(stack.client, wfId);
  tally.clear();
  log(`read storm: ${readers} concurrent acquireAccessToken of a valid token (3 storms, 1 s apart)`);
  // Three storms, the median one reported: the storm lasts ~30 ms, so one GC pause or one tick of the other tenants
  // running in this window (a 1-minute sync, a reader) moves a single storm's p99 by several times.
  const storms: { results: Awaited<ReturnType<typeof call>>[]; wall: number; p99: number }[] = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(1_000);
    const t = performance.now();
    const results = await Promise.all(Array.from({ length: readers }, () => call()));
    const wall = performance.now() - t;
    storms.push({
      results,
      wall,
      p99: percentile(
        results.map((r) => r.ms),
        99,
      ),
    });
  }
  const { results, wall } = [...storms].sort((a, b) => a.p99 - b.p99)[1]!;
  const updates = tally.get('attempts') ?? 0;
  const refreshes = (await refreshesOfUser(sim, userId)) - refreshesBefore;
  await sleep(2_000);
  const events = (await totalEvents(stack.client, wfId)) - eventsBefore;
  const lat = results.map((r) => r.ms);
  const p50 = percentile(lat, 50);
  const p99 = percentile(lat, 99);
  const fromStore = results.filter((r) => r.servedBy === 'store').length;
  return [
    {
      section: 'read storm',
      name: `${fmt.int(readers)} concurrent callers, valid token: p99 vs one uncontended call`,
      ours: `p50 ${fmt.ms(p50)}, p99 ${fmt.ms(p99)} (${fmt.int(fromStore)} of ${fmt.int(readers)} served from the store; ${fmt.int(storms.flatMap((x) => x.results).filter((r) => r.servedBy === 'store').length)} of ${fmt.int(3 * readers)} over the 3 storms)`,
      reference: `uncontended ${fmt.ms(soloP50)} (median of 50 sequential calls)`,
      ratio: `p99 ${fmt.ratio(p99 / soloP50)}`,
      target: '≤ 3×',
      met: p99 / soloP50 <= 3,
      note: `a call = acquireAccessToken({ minValidSeconds: 60 }) from one process: the read path reads the token document and the connection mirror (two point reads in parallel) and decrypts; concurrent callers of one connection share the read that is in flight (coalescing, nothing cached after it answers); the median of 3 storms by p99 (p99s ${storms.map((x) => fmt.ms(x.p99)).join(' / ')}): all ${fmt.int(readers)} finished in ${fmt.ms(wall)}; over the 3 storms, updates sent to Temporal: ${updates}; history events added to the connection: ${events}; refreshes at Sage: ${refreshes}`,
    },
  ];
}

async function stormFigures(
  stack: BenchStack,
  sim: SimProcess,
  log: (m: string) => void,
  N: number,
): Promise<Figure[]> {
  const { tenantId, userId, wfId } = await connectWeeklyTenant(stack, sim, 'storm');
  const tally = new Map<string, number>();
  const deps = { client: countingClient(stack.client, tally), mongo: stack.mongo, config: stack.config };
  const call = async (opts: { rejectedTokenVersion?: number }) => {
    const t = performance.now();
    try {
      await acquireAccessToken(deps, { tenantId, provider: P }, { ...opts, deadlineMs: STORM_CALLER_DEADLINE_MS });
      return { ms: performance.now() - t, error: null as string | null };
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause;
      return {
        ms: performance.now() - t,
        error: `${(err as Error).message}${cause?.message ? `: ${cause.message}` : ''}`.slice(0, 200),
      };
    }
  };
  // Uncontended: sequential getAccessToken updates that need no refresh (rejecting an old version forces the update
  // path; a plain call would be answered by the store).
  const solo: number[] = [];
  for (let i = 0; i < 20; i++) solo.push((await call({ rejectedTokenVersion: 0 })).ms);
  const soloP50 = percentile(solo, 50);
  const before = await refreshesOfUser(sim, userId);
  const reusedBefore = (await counters(sim)).reusedRefreshTokens;
  const current = (await stack.client.workflow.getHandle(wfId).executeUpdate(getAccessTokenUpdate, { args: [{}] }))
    .tokenVersion;
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
      reference: `uncontended ${fmt.ms(soloP50)} (median of 20 sequential update calls, no refresh)`,
      ...(lat.length ? { ratio: `p50 ${fmt.ratio(p50 / soloP50)}, p99 ${fmt.ratio(p99 / soloP50)}` } : {}),
      note: 'a call = acquireAccessToken: the getAccessToken update (with its retries) + reading and decrypting the token version from the store',
    },
  ];
}

/** The peer policy: before every read, refresh if the token expires within 15 minutes (always, for 300-s tokens). */
async function naiveReader(
  sim: SimProcess,
  userId: string,
  stop: () => boolean,
): Promise<{ reads: number; refreshes: number; errors: number }> {
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
            form: {
              grant_type: 'refresh_token',
              refresh_token: refresh,
              client_id: DEMO_APPS.sageAccounting.clientId,
              client_secret: DEMO_APPS.sageAccounting.clientSecret,
            },
          })
          .json()) as { access_token: string; refresh_token: string; expires_in: number };
        access = t.access_token;
        refresh = t.refresh_token;
        expiresAt = Date.now() + t.expires_in * 1000;
        refreshes++;
      }
      await got(`${sim.url}/sage-accounting/v3.1/contacts?items_per_page=1`, {
        headers: { authorization: `Bearer ${access}`, 'x-business': business },
      });
      reads++;
    } catch {
      errors++;
    }
    await sleep(1000);
  }
  return { reads, refreshes, errors };
}

/** Ours: before every read ask the connection workflow (acquireAccessToken); on a 401, ask again rejecting that version. */
async function oursReader(
  stack: BenchStack,
  sim: SimProcess,
  tenantId: string,
  business: string,
  stop: () => boolean,
): Promise<{ reads: number; errors: number; unauthorized: number }> {
  let reads = 0;
  let errors = 0;
  let unauthorized = 0;
  while (!stop()) {
    try {
      let tok = await acquireAccessToken(stack, { tenantId, provider: P });
      let res = await got(`${sim.url}/sage-accounting/v3.1/contacts?items_per_page=1`, {
        headers: { authorization: `Bearer ${tok.accessToken}`, 'x-business': business },
        throwHttpErrors: false,
      });
      if (res.statusCode === 401) {
        unauthorized++;
        tok = await acquireAccessToken(stack, { tenantId, provider: P }, { rejectedTokenVersion: tok.tokenVersion });
        res = await got(`${sim.url}/sage-accounting/v3.1/contacts?items_per_page=1`, {
          headers: { authorization: `Bearer ${tok.accessToken}`, 'x-business': business },
          throwHttpErrors: false,
        });
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

export async function tokenSections(opts: {
  sim: SimProcess;
  log: (m: string) => void;
  readWindowMs: number;
  readers: number;
  stormCallers: number;
}): Promise<Figure[]> {
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
    const target = {
      client: stack.client,
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      simAdminUrl: `${sim.url}/__admin`,
    };

    // --- idle tenant, compressed refresh-token life. The same simulator serves the synced tenant with 50-s access tokens
    // (a refresh every 1-minute run); that tenant refreshes every minute, so its own keep-alive never comes due.
    const IDLE_REFRESH_TTL = 150;
    const SYNC_ACCESS_TTL = 50;
    await idleSim.admin.post('settings', {
      json: { sageAccounting: { refreshTokenTtlSeconds: IDLE_REFRESH_TTL, accessTokenTtlSeconds: SYNC_ACCESS_TTL } },
    });
    const { userId: idleUser, wfId: idleWf } = await connectWeeklyTenant(idleStack, idleSim, 'idle');
    await firstSyncReported(idleStack.client, idleWf);
    const idleStart = await totalEvents(idleStack.client, idleWf);
    const idleRefreshesBefore = await refreshesOfUser(idleSim, idleUser);
    const idleT0 = Date.now();

    // --- continuous use: ours vs the 15-minute policy, same window
    const oursUser = await createUser(sim);
    const oursTenant = uniqueName('rate');
    const oursStatus = await connectTenant(target, {
      tenantId: oursTenant,
      provider: P,
      userId: oursUser,
      input: { sync: { intervalMinutes: 7 * 24 * 60 } },
    });
    await firstSyncReported(stack.client, connectionWorkflowId(P, oursTenant));
    const naiveUser = await createUser(sim);
    const oursRefreshBefore = await refreshesOfUser(sim, oursUser);
    const oursEventsBefore = await totalEvents(stack.client, connectionWorkflowId(P, oursTenant));
    let stopped = false;
    const windowStart = Date.now();
    const ours = oursReader(stack, sim, oursTenant, oursStatus.partitions[0]!.id, () => stopped);
    const naive = naiveReader(sim, naiveUser, () => stopped);

    // --- a tenant synced every minute (the schedule's shortest interval), on the 50-s-token simulator
    const syncUser = await createUser(idleSim, 50);
    const syncTenant = uniqueName('hourly');
    const syncWf = connectionWorkflowId(P, syncTenant);
    await connectTenant(
      {
        client: idleStack.client,
        taskQueue: idleStack.config.TEMPORAL_TASK_QUEUE,
        simAdminUrl: `${idleSim.url}/__admin`,
      },
      { tenantId: syncTenant, provider: P, userId: syncUser, input: { sync: { intervalMinutes: 1 } } },
    );
    await firstSyncReported(idleStack.client, syncWf);
    const syncEventsBefore = await totalEvents(idleStack.client, syncWf);
    const syncHistoryIndex = (await idleStack.client.workflow.getHandle(syncWf).fetchHistory()).events?.length ?? 0;
    const syncRefreshesBefore = await refreshesOfUser(idleSim, syncUser);
    const syncT0 = new Date();

    // --- the storms, while the window runs (separate tenants: the reader's history is not touched)
    figures.push(...(await readStormFigures(stack, sim, log, opts.readers)));
    figures.push(...(await stormFigures(stack, sim, log, opts.stormCallers)));

    const windowMs = opts.readWindowMs;
    const endAt = windowStart + windowMs;
    log(`tokens: continuous-use window of ${Math.round(windowMs / 1000)} s`);
    while (Date.now() < endAt) await sleep(1000);
    stopped = true;
    const [o, n] = await Promise.all([ours, naive]);
    const windowSecs = (Date.now() - windowStart) / 1000;
    const oursRefreshes = (await refreshesOfUser(sim, oursUser)) - oursRefreshBefore;
    const oursEvents = (await totalEvents(stack.client, connectionWorkflowId(P, oursTenant))) - oursEventsBefore;
    const perHour = (x: number) => (x * 3600) / windowSecs;
    const perRead = o.reads > 0 ? oursEvents / o.reads : Number.NaN;
    figures.push({
      section: 'temporal cost',
      name: `history events per token read, 1 read/s for ${fmt.int(windowSecs)} s (refreshes included)`,
      ours: `${fmt.num(perRead, 3)} events/read (${fmt.int(oursEvents)} events / ${fmt.int(o.reads)} reads, ${oursRefreshes} refreshes)`,
      reference:
        'before the read path every read was a getAccessToken update: 5.1 events/read (BENCHMARKS.md of 2026-11-26)',
      target: '≤ 0.2',
      met: windowSecs >= 900 ? perRead <= 0.2 : null,
      note: `all runs of the reader's connection workflow counted from its real history over the window; real 300-s tokens, so the window holds about one refresh per 225 s${windowSecs < 900 ? `; window shorter than the 15 minutes the target asks (BENCH_READ_WINDOW_S), so not judged` : ''}`,
    });
    figures.push({
      section: 'refresh rate',
      name: 'refreshes per hour of continuous use, 300-s tokens (1 read/s)',
      ours: `${fmt.num(perHour(oursRefreshes))}/h (${oursRefreshes} in ${Math.round(windowSecs)} s, ${o.reads} reads, ${o.unauthorized} 401s, ${o.errors} errors)`,
      reference: `refresh-within-15-min policy: ${fmt.num(perHour(n.refreshes))}/h (${n.refreshes} in ${Math.round(windowSecs)} s, ${n.reads} reads)`,
      ratio: oursRefreshes > 0 ? fmt.ratio(n.refreshes / oursRefreshes) : undefined,
      note: `real 300-s tokens, not compressed; both clients ran in the same window against the same simulator; refreshes counted at the simulator per grant. Ours: the workflow refreshes when 25% of the token life (75 s) is left, so about one refresh per 225 s = 16/h at steady state. Reads between refreshes come from the token store (no update)`,
    });

    // --- idle tenant: events per keep-alive cycle, scaled to 31-day refresh tokens
    const idleEvents = (await totalEvents(idleStack.client, idleWf)) - idleStart;
    const idleSecs = (Date.now() - idleT0) / 1000;
    const idleRefreshes = (await refreshesOfUser(idleSim, idleUser)) - idleRefreshesBefore;
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

    // --- tenant synced every minute with 50-s tokens (a refresh per run, as hourly with 300-s tokens), × 24 runs a day
    const syncSecs = (Date.now() - syncT0.getTime()) / 1000;
    const runs = await historyLengths(
      idleStack.client,
      `TenantId = "${syncTenant}" AND WorkflowType = "syncCustomers" AND StartTime > "${syncT0.toISOString()}" AND ExecutionStatus = "Completed"`,
    );
    const syncRunEvents = runs.reduce((a, r) => a + r.historyLength, 0);
    const connEvents = (await totalEvents(idleStack.client, syncWf)) - syncEventsBefore;
    const syncRefreshes = (await refreshesOfUser(idleSim, syncUser)) - syncRefreshesBefore;
    const connBreakdown = await eventTypesSince(idleStack.client, syncWf, syncHistoryIndex).catch(
      (err: Error) => `(breakdown unavailable: ${err.message})`,
    );
    if (runs.length > 0) {
      const connPerRun = connEvents / runs.length;
      const syncPerRun = syncRunEvents / runs.length;
      figures.push({
        section: 'temporal cost',
        name: 'connection-workflow events per hourly-synced Sage Accounting tenant-day (1 partition)',
        ours: `${fmt.int(24 * connPerRun)} events/day (${fmt.num(connPerRun)} per run)`,
        reference: `sync workflows: ${fmt.int(24 * syncPerRun)} events/day (${fmt.num(syncPerRun)} per run); before the split: 1,692 together`,
        target: '≤ 480 (≤ 20 per run)',
        met: connPerRun <= 20,
        note: `${runs.length} completed runs of a 1-minute schedule in ${Math.round(syncSecs)} s with ${SYNC_ACCESS_TTL}-s access tokens: ${syncRefreshes} refreshes at Sage (an hourly run with 300-s tokens always needs one); connection events = everything the runs added to the connection workflow's history (getAccessToken update + refresh activity, syncReport signal, mirror); sync events = the syncCustomers histories; × 24 runs a day. Connection events by type over the window (current run): ${connBreakdown}`,
      });
    } else {
      figures.push({
        section: 'temporal cost',
        name: 'connection-workflow events per hourly-synced tenant-day',
        ours: null,
        reference: null,
        target: '≤ 480',
        met: null,
        note: `not measured: no sync run completed in ${Math.round(syncSecs)} s`,
      });
    }

    const all = [
      ...(await allHistoryLengths(stack.client, stack.config.TEMPORAL_TASK_QUEUE)),
      ...(await allHistoryLengths(idleStack.client, idleStack.config.TEMPORAL_TASK_QUEUE)),
    ];
    const largest = all.reduce((m, r) => (r.historyLength > m.historyLength ? r : m), {
      workflowId: '-',
      historyLength: 0,
    });
    figures.push({
      section: 'temporal cost',
      name: 'largest history length seen (this section)',
      ours: `${fmt.int(largest.historyLength)} events`,
      reference: 'Temporal warns at 10,240 events and continue-as-new is suggested; hard limit 51,200',
      note: `${largest.workflowId} across ${all.length} runs (storm tenant included: ${opts.stormCallers} updates may trigger continue-as-new)`,
    });
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await stack.close();
    await idleStack.close();
    await idleSim.close();
  }
  return figures;
}
