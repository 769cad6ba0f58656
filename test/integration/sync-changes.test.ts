/**
 * Downstream readers learn what changed (issue 15; contract §4 `changeSeq`, §5 `customers.changed`): simulator over
 * HTTP → syncCustomers (real Temporal worker) → FerretDB, with a webhook receiver.
 *
 * After mutations at Sage (update, delete, create, and the untouched customers a full run fetches again: "updates" that
 * change nothing), the webhook's counts equal the simulator's truth and reading `changeSeq` in (fromSeq − 1, toSeq]
 * returns exactly the changed customers; partitions that sync at once never share a number; an unchanged re-run sends
 * no webhook; `sage-sync changes` pages through the same changes; a connection's own `notifyWebhookUrl` wins over
 * `NOTIFY_WEBHOOK_URL`.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/main.js';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { connectionWorkflowId, disconnectSignal, type Provider } from '../../src/messages.js';
import type { CustomersChangedEvent } from '../../src/sync/announce.js';
import { readHorizon } from '../../src/sync/change-seq.js';
import type { CustomerDoc } from '../../src/sync/documents.js';
import { verifySignature } from '../../src/tokens/notify.js';
import { syncCustomers } from '../../src/workflows/index.js';
import { connectTenant, waitForStatus } from '../helpers/consent.js';
import { readChanges as readChangesOf, startChangeReader } from '../helpers/change-reader.js';
import { uniqueName } from '../helpers/env.js';
import { syncHarness, type SimUserInfo, type SyncHarness } from '../helpers/sync-harness.js';
import { webhookReceiver } from '../helpers/token-harness.js';

const SECRET = 'changes-webhook-secret';
let hook: Awaited<ReturnType<typeof webhookReceiver>>;
let h: SyncHarness;
before(async () => {
  // The first delivery attempt fails: the event still arrives (retried like the reauthorization notifications).
  hook = await webhookReceiver({ failFirst: 1 });
  h = await syncHarness({
    SAGE_ACCOUNTING_PAGE_SIZE: '10',
    SAGE200_PAGE_SIZE: '10',
    NOTIFY_WEBHOOK_URL: hook.url,
    NOTIFY_WEBHOOK_SECRET: SECRET,
  });
});
after(async () => {
  await h?.close();
  await hook?.close();
});

const eventsFor = (received: typeof hook.received, tenantId: string) =>
  received
    .map((r) => ({ ...r, event: JSON.parse(r.body) as CustomersChangedEvent }))
    .filter((r) => r.event.type === 'customers.changed' && r.event.tenantId === tenantId);

async function waitForEvent(received: typeof hook.received, tenantId: string, runId: string, timeoutMs = 90_000) {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
    const e = eventsFor(received, tenantId).find((r) => r.event.runId === runId);
    if (e) return e;
  }
  assert.fail(`no customers.changed event for run ${runId}`);
}

/** Did the run start a delivery? (Deterministic: the child is started before the run completes.) */
async function startedDelivery(workflowId: string): Promise<boolean> {
  const history = await h.stack.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).some((e) => e.startChildWorkflowExecutionInitiatedEventAttributes);
}

const allDocs = (tenantId: string, provider: Provider) =>
  h.stack.mongo.collection<CustomerDoc>(COLLECTIONS.customers).find({ tenantId, provider }).toArray();

/** What a downstream reader gets for (after, upTo]: the query of the README. */
const readChanges = (tenantId: string, provider: Provider, after: number, upTo: number) =>
  readChangesOf(h.stack.mongo, { tenantId, provider }, after, upTo);

function assertNoReuse(docs: CustomerDoc[]) {
  const seqs = docs.map((d) => d.changeSeq);
  assert.ok(
    seqs.every((s) => Number.isInteger(s) && s! > 0),
    'every stored customer carries a changeSeq',
  );
  const bySeq = new Map<number, string[]>();
  for (const d of docs)
    bySeq.set(d.changeSeq!, [
      ...(bySeq.get(d.changeSeq!) ?? []),
      `${d._id} deleted=${d.deleted} at=${d.changedAt?.toISOString()}`,
    ]);
  const shared = [...bySeq].filter(([, ids]) => ids.length > 1);
  assert.deepEqual(shared, [], 'no two customers share a changeSeq');
}

for (const provider of ['sage-accounting', 'sage-200'] as const) {
  describe(provider, () => {
    let tenant: SimUserInfo & { tenantId: string };
    let firstEvent: CustomersChangedEvent;

    test('first sync: one signed event, 3 partitions in parallel, every customer created, (fromSeq-1, toSeq] = all of them', async () => {
      tenant = await h.createTenant(provider, { partitions: 3, customersPerPartition: 25 });
      const run = await h.runSync(tenant.tenantId, provider);
      assert.equal(run.status, 'succeeded');
      const got = await waitForEvent(hook.received, tenant.tenantId, run.workflowId);
      firstEvent = got.event;
      assert.ok(
        verifySignature(SECRET, got.body, got.headers['x-sage-sync-signature'] as string),
        'signed like the reauthorization notifications',
      );
      assert.equal(got.headers['x-sage-sync-event'], 'customers.changed');
      assert.equal(got.headers['x-sage-sync-event-id'], firstEvent.id);
      assert.deepEqual(Object.keys(firstEvent).sort(), [
        'fromSeq',
        'id',
        'partitions',
        'provider',
        'runId',
        'tenantId',
        'toSeq',
        'type',
      ]);
      assert.equal(firstEvent.provider, provider);
      const docs = await allDocs(tenant.tenantId, provider);
      for (const p of tenant.partitions) {
        const n = docs.filter((d) => d.partitionId === p.id).length;
        assert.deepEqual(firstEvent.partitions[p.id], { created: n, updated: 0, deleted: 0 }, `partition ${p.id}`);
      }
      assert.equal(firstEvent.fromSeq, 1);
      assertNoReuse(docs);
      const read = await readChanges(tenant.tenantId, provider, firstEvent.fromSeq - 1, firstEvent.toSeq);
      assert.deepEqual(
        read.map((d) => d._id).sort(),
        docs.map((d) => d._id).sort(),
        'the range returns exactly the created customers',
      );
      assert.ok(read.every((d) => d.changedAt instanceof Date));
      assert.equal(
        await readHorizon(h.stack.mongo.db, tenant),
        firstEvent.toSeq,
        'nothing open: the horizon is the announced toSeq',
      );
      const runs = await h.stack.mongo
        .collection(COLLECTIONS.syncRuns)
        .find({ syncWorkflowId: run.workflowId } as never)
        .toArray();
      assert.equal(runs.length, 3);
      assert.ok(
        runs.every((r) => r.toSeq === firstEvent.toSeq && r.fromSeq === 1),
        'sync_runs carry the range for readers without a webhook',
      );
    });

    test('after update, delete and create at Sage: counts equal the truth, the range holds exactly the changed customers', async () => {
      const [p1, p2] = tenant.partitions;
      const before = new Map((await allDocs(tenant.tenantId, provider)).map((d) => [d._id, d]));
      const m1 = h.sim.admin.mutate({
        provider,
        partitionId: p1!.id,
        userId: tenant.userId,
        update: 3,
        delete: 2,
        create: 4,
      });
      const m2 = h.sim.admin.mutate({ provider, partitionId: p2!.id, userId: tenant.userId, update: 1 });
      // A reader polling (cursor, horizon] while the run writes.
      const reader = await startChangeReader(h.stack.mongo, { tenantId: tenant.tenantId, provider });
      // Full: every untouched customer is fetched again and must count as nothing (an "update" that changes nothing).
      const run = await h.runSync(tenant.tenantId, provider, 'full');
      assert.equal(run.status, 'succeeded');
      await reader.stop();
      const { event } = await waitForEvent(hook.received, tenant.tenantId, run.workflowId);
      assert.deepEqual(event.partitions[p1!.id], {
        created: m1.created.length,
        updated: m1.updated.length,
        deleted: m1.deleted.length,
      });
      assert.deepEqual(event.partitions[p2!.id], { created: 0, updated: m2.updated.length, deleted: 0 });
      assert.deepEqual(event.partitions[tenant.partitions[2]!.id], { created: 0, updated: 0, deleted: 0 });
      assert.equal(event.fromSeq, firstEvent.toSeq + 1, 'events tile the sequence');
      assert.notEqual(event.id, firstEvent.id);

      const read = await readChanges(tenant.tenantId, provider, event.fromSeq - 1, event.toSeq);
      const want = [
        ...[...m1.updated, ...m1.deleted, ...m1.created].map((id) => `${provider}:${tenant.tenantId}:${p1!.id}:${id}`),
        ...m2.updated.map((id) => `${provider}:${tenant.tenantId}:${p2!.id}:${id}`),
      ].sort();
      assert.deepEqual(read.map((d) => d._id).sort(), want, 'exactly the changed customers');
      assert.equal(reader.cursorAtStart, event.fromSeq - 1, 'the polling reader started where the event starts');
      assert.deepEqual(
        [...reader.seen].sort(([a], [b]) => a.localeCompare(b)),
        read.map((d) => [d._id, d.changeSeq] as const).sort(([a], [b]) => a.localeCompare(b)),
        'the polling reader read exactly the changed customers, each with its final number',
      );
      assert.ok(
        reader.horizons.every((x, i) => i === 0 || x >= reader.horizons[i - 1]!),
        'the horizon never went backwards',
      );
      for (const d of read) if (m1.deleted.includes(d.externalId)) assert.equal(d.deleted, true);
      const after = await allDocs(tenant.tenantId, provider);
      assertNoReuse(after);
      for (const d of after) {
        if (want.includes(d._id)) continue;
        const b = before.get(d._id)!;
        assert.equal(d.changeSeq, b.changeSeq, `${d._id}: unchanged customers keep their changeSeq`);
        assert.equal(d.changedAt?.getTime(), b.changedAt?.getTime());
      }
      for (const p of tenant.partitions) assert.deepEqual(await h.diffWithTruth(tenant.tenantId, tenant, p.id), []);
    });

    test('an unchanged re-run (incremental, then full) sends no webhook and stamps nothing', async () => {
      const seqsBefore = (await allDocs(tenant.tenantId, provider)).map((d) => `${d._id}=${d.changeSeq}`).sort();
      const eventsBefore = eventsFor(hook.received, tenant.tenantId).length;
      for (const mode of ['incremental', 'full'] as const) {
        const run = await h.runSync(tenant.tenantId, provider, mode);
        assert.equal(run.status, 'succeeded');
        assert.equal(await startedDelivery(run.workflowId), false, `${mode}: no delivery started`);
      }
      await sleep(1_000);
      assert.equal(eventsFor(hook.received, tenant.tenantId).length, eventsBefore, 'no event arrived');
      assert.deepEqual(
        (await allDocs(tenant.tenantId, provider)).map((d) => `${d._id}=${d.changeSeq}`).sort(),
        seqsBefore,
      );
    });

    test('sage-sync changes: JSON lines in sequence order ending with the horizon; --since continues from it', async () => {
      const env = {
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        TEMPORAL_ADDRESS: h.stack.config.TEMPORAL_ADDRESS,
        MONGODB_URI: h.stack.config.MONGODB_URI,
        MONGODB_DB: h.stack.config.MONGODB_DB,
        TOKEN_ENCRYPTION_KEY: h.stack.config.encryptionKey.key.toString('base64'),
      };
      const cli = async (...args: string[]) => {
        const out = new PassThrough();
        const err = new PassThrough();
        let text = '';
        out.on('data', (c) => (text += String(c)));
        const code = await runCli(
          args,
          { out: out as unknown as typeof process.stdout, err: err as unknown as typeof process.stderr },
          env,
        );
        return {
          code,
          lines: text
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>),
        };
      };
      const all = await cli('changes', tenant.tenantId, '--provider', provider);
      assert.equal(all.code, 0);
      const last = all.lines.at(-1)!;
      const horizon = await readHorizon(h.stack.mongo.db, tenant);
      assert.deepEqual(last, { horizon });
      const rows = all.lines.slice(0, -1);
      const docs = await allDocs(tenant.tenantId, provider);
      assert.equal(rows.length, docs.length, 'since 0: every customer (each has changed once at least)');
      const seqs = rows.map((r) => r.changeSeq as number);
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        'in sequence order',
      );
      assert.ok(
        rows.every((r) => !('contentHash' in r)),
        'internal fields stay internal',
      );

      const m = h.sim.admin.mutate({
        provider,
        partitionId: tenant.partitions[0]!.id,
        userId: tenant.userId,
        update: 2,
      });
      await h.runSync(tenant.tenantId, provider);
      const next = await cli('changes', tenant.tenantId, '--provider', provider, '--since', String(horizon));
      assert.deepEqual(
        next.lines
          .slice(0, -1)
          .map((r) => r.externalId)
          .sort(),
        [...m.updated].sort(),
        'only what changed since the last horizon',
      );
      assert.ok((next.lines.at(-1)!.horizon as number) > horizon);
      const bad = await cli('changes', tenant.tenantId, '--since', 'x');
      assert.equal(bad.code, 2, 'a bad --since is a usage error');
    });
  });
}

test("a connection's own notifyWebhookUrl overrides NOTIFY_WEBHOOK_URL", async () => {
  const own = await webhookReceiver();
  const provider = 'sage-accounting' as const;
  // createTenant registers the simulated user with the harness's token source; the real connection then takes over.
  const { tenantId, userId } = await h.createTenant(provider, { partitions: 1, customersPerPartition: 5 });
  const user = { id: userId };
  const workflowId = connectionWorkflowId(provider, tenantId);
  try {
    const status = await connectTenant(
      { client: h.stack.client, taskQueue: h.stack.config.TEMPORAL_TASK_QUEUE, simAdminUrl: `${h.sim.url}/__admin` },
      { tenantId, provider, userId: user.id, input: { notifyWebhookUrl: own.url } },
    );
    const partitionId = status.partitions[0]!.id;
    await waitForStatus(h.stack.client, workflowId, (s) => s.lastSync[partitionId]?.status === 'succeeded', 120_000);
    // The schedule's first sync uses the production token path; run one more by hand after a change, for a known run id.
    h.sim.admin.mutate({ provider, partitionId, userId: user.id, create: 2 });
    const syncId = uniqueName('sync-own');
    await h.stack.client.workflow.execute(syncCustomers, {
      workflowId: syncId,
      taskQueue: h.stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ tenantId, provider }],
    });
    const { event } = await waitForEvent(own.received, tenantId, syncId);
    assert.deepEqual(event.partitions[partitionId], { created: 2, updated: 0, deleted: 0 });
    assert.equal(eventsFor(hook.received, tenantId).length, 0, 'nothing went to the global URL');
    // Readers without a webhook: the connection's status carries the partition's horizon after each run.
    const after = await waitForStatus(
      h.stack.client,
      workflowId,
      (st) => (st.lastSync[partitionId]?.changeHorizon ?? 0) >= event.toSeq,
    );
    assert.equal(
      after.lastSync[partitionId]!.changeHorizon,
      event.toSeq,
      'one partition: its horizon is the announced toSeq',
    );
  } finally {
    await h.stack.client.workflow
      .getHandle(workflowId)
      .signal(disconnectSignal, { revoke: false })
      .catch(() => {});
    await own.close();
  }
});
