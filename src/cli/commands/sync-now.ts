import { WorkflowNotFoundError } from '@temporalio/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryStatus } from '../../lib/connection-overview.js';
import { COLLECTIONS, type Mongo } from '../../lib/mongo.js';
import { syncNowSignal } from '../../messages.js';
import { resolveConnection } from '../connection-ref.js';
import type { CliContext } from '../context.js';
import { CliExit, EXIT } from '../exit-codes.js';
import { ProgressView } from '../progress.js';
import { table } from '../table.js';

export interface SyncNowOptions {
  provider?: string;
  full?: boolean;
  wait?: boolean;
  json?: boolean;
  timeout?: string;
}

/** The fields of a `sync_runs` document we show (contract §4); `total` is Sage's `$total` when the sync recorded it. */
interface RunDoc {
  _id: string;
  partitionId: string;
  mode?: string;
  status: 'running' | 'succeeded' | 'failed';
  startedAt?: Date;
  finishedAt?: Date | null;
  pages?: number;
  fetched?: number;
  total?: number | null;
  upserted?: number;
  modified?: number;
  deleted?: number;
  quarantined?: number;
  error?: string | null;
}

// Runs are found by tenant and provider; the window bounds the (unindexed on FerretDB) scan.
const RECENT_MS = 6 * 3600_000;

async function recentRuns(mongo: Mongo, tenantId: string, provider: string): Promise<RunDoc[]> {
  return mongo
    .collection<RunDoc>(COLLECTIONS.syncRuns)
    .find({ tenantId, provider, startedAt: { $gte: new Date(Date.now() - RECENT_MS) } })
    .limit(2_000)
    .toArray();
}

/**
 * `sync-now <tenant> [--full] [--wait]`: signals `syncNow`. With `--wait`, follows the run(s) it caused in `sync_runs`
 * (those that appear after the signal, or that were already running — the schedule's overlap policy Skip folds a request
 * into a running sync) until every partition has finished, drawing progress from `pages`, `fetched` and `total`.
 */
export async function syncNowCommand(
  ctx: CliContext,
  tenant: string,
  opts: SyncNowOptions,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream & { isTTY?: boolean },
): Promise<number> {
  const c = await resolveConnection(ctx, tenant, opts.provider);
  if (c.state === 'disconnected')
    throw new CliExit(EXIT.notFound, `${c.tenantId} (${c.provider}) is disconnected; connect it again first`);
  if (c.state === 'awaiting_authorization' || c.state === 'reauthorization_required') {
    throw new CliExit(
      EXIT.reauthorizationRequired,
      `${c.tenantId} (${c.provider}) cannot sync until the customer consents: ${c.authorizationUrl ?? `sage-sync connect ${c.tenantId} --provider ${c.provider}`}`,
    );
  }
  const { client, mongo } = await ctx.deps();
  const mode = opts.full ? 'full' : 'incremental';
  const before = await recentRuns(mongo, c.tenantId, c.provider);
  const seenBefore = new Set(before.filter((r) => r.status !== 'running').map((r) => r._id));
  const lastSyncBefore = Object.fromEntries(Object.entries(c.lastSync).map(([p, s]) => [p, s.finishedAt]));
  try {
    await client.workflow.getHandle(c.workflowId).signal(syncNowSignal, { mode });
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) throw new CliExit(EXIT.notFound, `workflow ${c.workflowId} is not running`);
    throw e;
  }
  if (!opts.wait) {
    if (opts.json) out.write(`${JSON.stringify({ workflowId: c.workflowId, mode, requested: true }, null, 2)}\n`);
    else
      out.write(
        `${mode} sync requested for ${c.tenantId} (${c.provider}). Follow it with \`sage-sync status ${c.tenantId}\`.\n`,
      );
    return EXIT.ok;
  }

  const expected = c.partitions.map((p) => p.id);
  const deadline = Date.now() + Number(opts.timeout ?? 600) * 1000;
  const view = opts.json ? null : new ProgressView(err);
  let tracked: RunDoc[] = [];
  let polls = 0;
  for (;;) {
    tracked = (await recentRuns(mongo, c.tenantId, c.provider)).filter((r) => !seenBefore.has(r._id));
    view?.update({
      pages: tracked.reduce((n, r) => n + (r.pages ?? 0), 0),
      fetched: tracked.reduce((n, r) => n + (r.fetched ?? 0), 0),
      total:
        tracked.length > 0 && tracked.every((r) => typeof r.total === 'number')
          ? tracked.reduce((n, r) => n + (r.total ?? 0), 0)
          : null,
      runs: Math.max(expected.length, tracked.length),
      finishedRuns: tracked.filter((r) => r.status !== 'running').length,
    });
    const finished = tracked.length > 0 && tracked.every((r) => r.status !== 'running');
    const covered = expected.every((p) => tracked.some((r) => r.partitionId === p));
    if (finished && (covered || expected.length === 0)) break;
    // Second opinion every few polls: the workflow's own lastSync moved for every partition.
    if (finished && ++polls % 4 === 0) {
      const s = await queryStatus(client, c.workflowId, 2_000);
      if (s && expected.every((p) => s.lastSync[p] && s.lastSync[p].finishedAt !== lastSyncBefore[p])) break;
    }
    if (Date.now() > deadline) {
      view?.done();
      throw new CliExit(
        EXIT.failure,
        `timed out after ${opts.timeout ?? 600}s waiting for the sync of ${c.tenantId} (${c.provider}) to finish`,
      );
    }
    await sleep(500);
  }
  view?.done();
  const failed = tracked.filter((r) => r.status === 'failed');
  if (opts.json) {
    out.write(
      `${JSON.stringify({ workflowId: c.workflowId, mode, status: failed.length ? 'failed' : 'succeeded', runs: tracked }, null, 2)}\n`,
    );
  } else {
    out.write(
      `${table(
        ['PARTITION', 'MODE', 'STATUS', 'PAGES', 'FETCHED', 'UPSERTED', 'MODIFIED', 'DELETED', 'QUARANTINED', 'ERROR'],
        tracked.map((r) => [
          r.partitionId,
          r.mode ?? '-',
          r.status,
          String(r.pages ?? 0),
          String(r.fetched ?? 0),
          String(r.upserted ?? 0),
          String(r.modified ?? 0),
          String(r.deleted ?? 0),
          String(r.quarantined ?? 0),
          r.error ?? '',
        ]),
      )}\n`,
    );
  }
  if (failed.length) throw new CliExit(EXIT.failure, `${failed.length} partition sync(s) failed`);
  return EXIT.ok;
}
