/**
 * Customer-sync test wiring: the Sage simulator over HTTP, a real Temporal worker and FerretDB (via `testStack`), one
 * simulated Sage user per provider with several partitions, and helpers to run `syncCustomers` and compare MongoDB with
 * the simulator's ground truth.
 *
 * `tokenMode: 'grants'` mints tokens straight from the simulator (`/__admin/grants`) behind a test token source, for
 * tests that exercise paging and writes only; the connection-workflow path is covered in `sync-connection.test.ts`.
 * A sync plans from its connection workflow (`syncPlan` query), so `runSync` first starts a stand-in `tenantConnection`
 * for the tenant: the real workflow, started from a carried state that says connected with the user's partitions
 * (no tokens: the test token source provides them). Tests that connect the tenant for real do not call `runSync`.
 */
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../../src/activities/index.js';
import { createSyncActivities } from '../../src/activities/sync.js';
import { createLogger } from '../../src/lib/logger.js';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId, type Partition, type Provider } from '../../src/messages.js';
import { createSageHttp, type SageHttp } from '../../src/providers/http.js';
import type { CustomerDoc } from '../../src/sync/documents.js';
import type { TokenSource } from '../../src/sync/tokens.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import { syncCustomers, type SyncCustomersResult } from '../../src/workflows/index.js';
import { testStack, uniqueName, type TestStack } from './env.js';
import { startStandInConnection } from './stand-in-connection.js';

export interface SimUserInfo {
  userId: string;
  provider: Provider;
  partitions: Partition[];
  edition?: string;
}

export interface SyncHarness {
  sim: RunningSimulator;
  stack: TestStack;
  /** Every Sage URL the sync activities requested (path + query), in order. */
  requests: URL[];
  worker: Worker;
  createTenant(
    provider: Provider,
    opts: { partitions: number; customersPerPartition: number },
  ): Promise<SimUserInfo & { tenantId: string }>;
  runSync(
    tenantId: string,
    provider: Provider,
    mode?: 'incremental' | 'full',
  ): Promise<SyncCustomersResult & { workflowId: string }>;
  customers(tenantId: string, provider: Provider, partitionId: string): Promise<CustomerDoc[]>;
  /** Differences between MongoDB and the simulator's truth for one partition (empty = equal). */
  diffWithTruth(tenantId: string, t: SimUserInfo, partitionId: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function syncHarness(env: Record<string, string> = {}): Promise<SyncHarness> {
  const sim = await startSimulator({ usersPerProvider: 0, customersPerPartition: 0 });
  const stack = await testStack({ ...sim.env, SYNC_HEARTBEAT_TIMEOUT_SECONDS: '5', ...env });
  const requests: URL[] = [];
  const real = createSageHttp({
    maxConcurrency: stack.config.SAGE_MAX_CONCURRENCY,
    retries: 4,
    maxRetryAfterMs: 5_000,
  });
  // Records what we send (the simulator's counters only know paths), then delegates to the real client.
  const http: SageHttp = {
    ...real,
    getJson: (provider, url, options) => {
      requests.push(new URL(url));
      return real.getJson(provider, url, options);
    },
  };
  const users = new Map<string, SimUserInfo>();
  const tokenSourceFor = (t: { tenantId: string; provider: Provider }): TokenSource => {
    let version = 0;
    let current: string | null = null;
    return {
      async get(opts) {
        if (current && opts?.rejectedTokenVersion === undefined) return { accessToken: current, tokenVersion: version };
        const u = users.get(`${t.provider}:${t.tenantId}`);
        if (!u) throw new Error(`no simulated user for ${t.tenantId}`);
        const grant = sim.admin.mintGrant({ provider: t.provider, userId: u.userId });
        current = (grant.token as { access_token: string }).access_token;
        version += 1;
        return { accessToken: current, tokenVersion: version };
      },
    };
  };
  const log = createLogger({ level: 'silent' });
  const deps = { config: stack.config, mongo: stack.mongo, client: stack.client, log };
  const customers = (tenantId: string, provider: Provider, partitionId: string) =>
    stack.mongo.collection<CustomerDoc>(COLLECTIONS.customers).find({ tenantId, provider, partitionId }).toArray();
  const { worker } = await stack.startWorker({
    activities: { ...createActivities(deps), ...createSyncActivities(deps, { tokenSourceFor, http }) },
  });

  /** Stand-in connection workflows started so far (workflow ids), terminated on close. */
  const standIns = new Set<string>();
  async function ensureConnection(tenantId: string, provider: Provider): Promise<void> {
    if (standIns.has(connectionWorkflowId(provider, tenantId))) return;
    const u = users.get(`${provider}:${tenantId}`);
    if (!u) throw new Error(`no simulated user for ${tenantId}`);
    standIns.add(
      await startStandInConnection(stack.client, stack.config.TEMPORAL_TASK_QUEUE, {
        tenantId,
        provider,
        partitions: u.partitions,
        ...(u.edition ? { edition: u.edition } : {}),
      }),
    );
  }

  return {
    sim,
    stack,
    requests,
    worker,
    async createTenant(provider, opts) {
      const u = sim.admin.createUser({
        provider,
        partitions: opts.partitions,
        customersPerPartition: opts.customersPerPartition,
      });
      const partitions: Partition[] = u.partitions.map((p) =>
        'siteId' in p
          ? { id: String(p.companyId), name: p.name, siteId: p.siteId }
          : { id: p.partitionId, name: p.name },
      );
      const tenantId = uniqueName('t').replace(/_/g, '-');
      const info: SimUserInfo = {
        userId: u.id,
        provider,
        partitions,
        ...('edition' in u && u.edition ? { edition: u.edition } : {}),
      };
      users.set(`${provider}:${tenantId}`, info);
      // The connection's mirror document, as the connection workflow writes it once connected (for readers of it).
      await stack.mongo.collection(COLLECTIONS.connections).updateOne(
        { _id: connectionWorkflowId(provider, tenantId) } as never,
        {
          $set: {
            tenantId,
            provider,
            state: 'connected',
            partitions,
            ...(info.edition ? { sage200: { edition: info.edition } } : {}),
            updatedAt: new Date(),
          },
        },
        { upsert: true },
      );
      return { ...info, tenantId };
    },
    async runSync(tenantId, provider, mode) {
      await ensureConnection(tenantId, provider);
      const workflowId = uniqueName(`sync-${provider}-${tenantId}`);
      const result = await stack.client.workflow.execute(syncCustomers, {
        workflowId,
        taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
        args: [{ tenantId, provider, ...(mode ? { mode } : {}) }],
      });
      return { ...result, workflowId };
    },
    customers,
    async diffWithTruth(tenantId, t, partitionId) {
      const truth = sim.admin.truth(t.provider, partitionId, t.userId).customers;
      const docs = await customers(tenantId, t.provider, partitionId);
      const diffs: string[] = [];
      const byId = new Map(docs.map((d) => [d.externalId, d]));
      if (byId.size !== docs.length) diffs.push(`duplicate externalIds: ${docs.length} docs, ${byId.size} ids`);
      const truthIds = new Set(truth.map((c) => c.id));
      for (const d of docs)
        if (!truthIds.has(d.externalId)) diffs.push(`${d.externalId}: stored but not a customer in Sage (vendor?)`);
      for (const c of truth) {
        const d = byId.get(c.id);
        if (!d) {
          // A customer deleted before we ever saw it need not be stored at all.
          if (!c.deleted) diffs.push(`${c.id}: missing`);
          continue;
        }
        if (d.deleted !== c.deleted) diffs.push(`${c.id}: deleted ${d.deleted}, truth ${c.deleted}`);
        if (c.deleted) continue;
        // Sage 200's expanded currency carries no ISO code in any public source (only `currency_iso_code_id`), so the
        // mapping stores null rather than a guess (README: open question). Addresses: the country is an ISO code for Sage
        // Accounting (the country link's id) and the country name for Sage 200 (`main_address.country`, no code there).
        const expect = {
          reference: c.reference,
          name: c.name,
          email: c.email,
          currency: t.provider === 'sage-200' ? null : c.currency,
          balance: c.balance,
          creditLimit: c.creditLimit,
          address: {
            line1: c.address.line1,
            line2: c.address.line2,
            city: c.address.city,
            postalCode: c.address.postalCode,
          },
        };
        const got = {
          reference: d.reference,
          name: d.name,
          email: d.email,
          currency: d.currency,
          balance: d.balance,
          creditLimit: d.creditLimit,
          address: {
            line1: d.address.line1,
            line2: d.address.line2,
            city: d.address.city,
            postalCode: d.address.postalCode,
          },
        };
        if (d.balance === null || d.address.line1 === null || d.address.country === null)
          diffs.push(`${c.id}: balance/address not stored (${JSON.stringify(d.address)}, ${d.balance})`);
        if (JSON.stringify(expect) !== JSON.stringify(got))
          diffs.push(`${c.id}: ${JSON.stringify(got)} != truth ${JSON.stringify(expect)}`);
        if (d.sourceUpdatedAt.getTime() !== Date.parse(c.updated_at))
          diffs.push(`${c.id}: sourceUpdatedAt ${d.sourceUpdatedAt.toISOString()} != ${c.updated_at}`);
      }
      return diffs.slice(0, 20);
    },
    async close() {
      await Promise.all(
        [...standIns].map((id) =>
          stack.client.workflow
            .getHandle(id)
            .terminate('test over')
            .catch(() => {}),
        ),
      );
      await stack.close();
      await sim.close();
    },
  };
}

/** Counts what one sync run wrote, from its `sync_runs` documents. */
export async function runDocs(stack: TestStack, syncWorkflowIdPrefix: string) {
  return stack.mongo
    .collection(COLLECTIONS.syncRuns)
    .find({ _id: { $regex: `^${syncWorkflowIdPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}` } } as never)
    .toArray();
}
