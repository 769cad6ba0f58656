/**
 * One partition's customer sync, outside Temporal: page loop → validate → write → checkpoint, then deletions.
 * The activity (`src/activities/sync.ts`) wraps it with heartbeats; the benchmark calls it directly.
 *
 * After every page the checkpoint (cursor, counts, watermark) is written to `sync_runs` and handed to `onCheckpoint`
 * (the activity heartbeat), so a killed worker resumes at the page after the last checkpoint. Writes are idempotent by
 * `_id` and content hash, so the one page that may be re-read after a crash changes nothing twice.
 */
import type { AccessReason } from '../connection/reasons.js';
import { accessProblem, SageAccessDeniedError, SageApiError } from '../errors.js';
import { COLLECTIONS, type Mongo } from '../lib/mongo.js';
import type { PartitionSyncSummary } from '../messages.js';
import type {
  Cursor,
  CustomerPage,
  CustomerSource,
  NormalizedCustomer,
  PlannedPage,
  RequestContext,
  SyncTarget,
} from '../providers/types.js';
import {
  CUSTOMER_HASHES,
  PointHashes,
  PreloadedHashes,
  writeCustomers,
  type HashDoc,
  type HashView,
  type SyncCollections,
} from './bulk-writer.js';
import { ChangeSeqAllocator } from './change-seq.js';
import { flagDeleted, flagDeletedExternal, unseenIds } from './deletions.js';
import {
  buildCustomerDoc,
  customerId,
  customerIdPrefix,
  syncRunId,
  syncStateId,
  type CustomerDoc,
  type PartitionKey,
} from './documents.js';
import { contentHash } from './hash.js';
import { writeQuarantine, type QuarantineDoc, type Rejected } from './quarantine.js';
import {
  checkpointRun,
  finishRun,
  readState,
  saveState,
  startRun,
  zeroCounts,
  type Checkpoint,
  type RunCounts,
  type SyncMode,
  type SyncRunDoc,
  type SyncStateDoc,
} from './runs.js';
import {
  clearSeen,
  clearWriteIntent,
  dropWriteIntents,
  loadSeen,
  loadWriteIntents,
  recordSeen,
  recordWriteIntent,
  SYNC_WRITE_INTENTS,
  type SeenPageDoc,
  type WriteIntentDoc,
} from './seen.js';
import { ReadAhead } from './read-ahead.js';
import { renewingTokenSource, type AccessToken, type TokenSource } from './tokens.js';
import { advanceWatermark, incrementalSince, maxWatermark } from './watermark.js';

/** Up to this many unseen customers are confirmed one by one before being flagged deleted; more are flagged as is. */
export const VERIFY_UNSEEN_LIMIT = 100;

export interface PartitionSyncDeps {
  mongo: Mongo;
  source: CustomerSource;
  tokens: TokenSource;
  pageSize: number;
  /**
   * Pages of this partition fetched at once when the source can plan them (`plannedPagesAfter`); default 1. Writes and
   * checkpoints stay in page order whatever this is. The process-wide cap on Sage requests is the HTTP client's.
   */
  pageConcurrency?: number;
  overlapSeconds: number;
  now?: () => Date;
  /** Called after each durable checkpoint (the activity heartbeats here). */
  onCheckpoint?: (cp: Checkpoint) => void | Promise<void>;
  log?: { info: (obj: object, msg: string) => void; warn: (obj: object, msg: string) => void };
  /** Stamp `changeSeq`/`changedAt` on every change (default true; the bench turns it off to measure its cost). */
  stampChanges?: boolean;
}

export interface PartitionSyncInput {
  target: SyncTarget;
  mode: SyncMode;
  /** Id of the `syncCustomers` workflow run; `sync_runs._id` = `{syncWorkflowId}:{partitionId}`. */
  syncWorkflowId: string;
  /** A checkpoint to continue from (heartbeat details of a previous attempt); the newer of it and `sync_runs` wins. */
  resumeFrom?: Checkpoint | null;
  attempt?: number;
}

export interface PartitionSyncResult {
  partitionId: string;
  summary: PartitionSyncSummary;
  checkpoint: Checkpoint;
}

const PHASE_ORDER: Record<Checkpoint['phase'], number> = { customers: 0, deletions: 1, done: 2 };

/** The further-along of two checkpoints (the heartbeat can lag behind `sync_runs` because heartbeats are throttled). */
export function laterCheckpoint(a: Checkpoint | null | undefined, b: Checkpoint | null | undefined): Checkpoint | null {
  if (!a) return b ?? null;
  if (!b) return a;
  if (PHASE_ORDER[a.phase] !== PHASE_ORDER[b.phase]) return PHASE_ORDER[a.phase] > PHASE_ORDER[b.phase] ? a : b;
  return a.counts.pages >= b.counts.pages ? a : b;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function syncPartition(deps: PartitionSyncDeps, input: PartitionSyncInput): Promise<PartitionSyncResult> {
  const now = deps.now ?? (() => new Date());
  const { target, mode } = input;
  const key: PartitionKey = { tenantId: target.tenantId, provider: target.provider, partitionId: target.partition.id };
  const runKey = syncRunId(input.syncWorkflowId, target.partition.id);
  const customers = deps.mongo.collection<CustomerDoc>(COLLECTIONS.customers);
  const quarantine = deps.mongo.collection<QuarantineDoc>(COLLECTIONS.quarantine);
  const runs = deps.mongo.collection<SyncRunDoc>(COLLECTIONS.syncRuns);
  const stateColl = deps.mongo.db.collection<SyncStateDoc>(COLLECTIONS.syncState);
  const seenColl = deps.mongo.db.collection<SeenPageDoc>(COLLECTIONS.syncSeen);
  const colls: SyncCollections = { customers, hashes: deps.mongo.db.collection<HashDoc>(CUSTOMER_HASHES) };
  const intents = deps.mongo.db.collection<WriteIntentDoc>(SYNC_WRITE_INTENTS);
  const prefix = customerIdPrefix(key);
  const stamper =
    deps.stampChanges === false
      ? undefined
      : new ChangeSeqAllocator(deps.mongo.db, key, {
          syncWorkflowId: input.syncWorkflowId,
          attempt: input.attempt ?? 1,
        });

  const state = await readState(stateColl, syncStateId(key));
  const since = mode === 'incremental' ? incrementalSince(state?.watermark, deps.overlapSeconds) : null;
  const run = await startRun(
    runs,
    runKey,
    {
      ...key,
      syncWorkflowId: input.syncWorkflowId,
      mode,
      watermarkFrom: state?.watermark ? new Date(state.watermark.updatedAt) : null,
      attempt: input.attempt ?? 1,
    },
    now(),
    { deletionsFrom: state?.deletionsSince ?? null },
  );
  // The deletion feed starts where sync_state stood when this run's FIRST attempt began (pinned in sync_runs): a retry
  // must not take a position another run saved meanwhile, which need not cover what this run wrote before its crash.
  const deletionsFrom = run?.deletionsFrom !== undefined ? run.deletionsFrom : (state?.deletionsSince ?? null);
  const cp: Checkpoint = structuredClone(
    laterCheckpoint(input.resumeFrom, run?.checkpoint) ?? {
      phase: 'customers',
      cursor: null,
      counts: zeroCounts(),
      watermark: null,
      serverStartedAt: null,
      deletionPages: 0,
    },
  );

  // Renews ahead of the token's known expiry (the workflow's margin), so a long run does not wait for a 401.
  const tokens = renewingTokenSource(deps.tokens);
  /**
   * At most one forced refresh per partition run; the token it yields is "just refreshed" and never rejected again.
   * Pages fetched concurrently that were sent with the same rejected token all wait for that one refresh (the token
   * holder coalesces it too) and retry once; a 401 on any token newer than the rejected one is an access problem.
   */
  let forcedRefresh: { fromVersion: number; token: Promise<AccessToken> } | null = null;
  async function withToken<T>(fn: (ctx: RequestContext) => Promise<T>): Promise<T> {
    let token = await tokens.get();
    try {
      return await fn({ ...target, accessToken: token.accessToken });
    } catch (err) {
      if (!(err instanceof SageApiError) || (err.status !== 401 && err.status !== 403)) throw err;
      // A 401/403 whose body names the cause (lapsed subscription, business/site access, APIM key) is not the token.
      const named = accessProblem(err);
      if (named) throw named;
      if (err.status === 403 || (forcedRefresh && token.tokenVersion !== forcedRefresh.fromVersion))
        throw await unauthorizedOnFreshToken(err, token.accessToken);
      // Possibly the token (expired early, revoked, rotated elsewhere): ask once for a newer one, then retry the page.
      forcedRefresh ??= {
        fromVersion: token.tokenVersion,
        token: tokens.get({ rejectedTokenVersion: token.tokenVersion }),
      };
      token = await forcedRefresh.token;
      try {
        return await fn({ ...target, accessToken: token.accessToken });
      } catch (again) {
        if (!(again instanceof SageApiError) || (again.status !== 401 && again.status !== 403)) throw again;
        throw accessProblem(again) ?? (await unauthorizedOnFreshToken(again, token.accessToken));
      }
    }
  }

  /** A 401 that a fresh token did not cure: an access problem of this partition, explained by the source when it can. */
  async function unauthorizedOnFreshToken(err: SageApiError, accessToken: string): Promise<SageAccessDeniedError> {
    const explained = await deps.source.explainUnauthorized?.({ ...target, accessToken }).catch(() => null);
    return (
      explained ??
      new SageAccessDeniedError(
        target.provider,
        'token_rejected',
        err.status,
        `Sage rejects a freshly refreshed token for this partition (HTTP ${err.status} on ${err.path})`,
      )
    );
  }

  /**
   * Asks Sage about each unseen customer (when there are few): offset paging skips a record whenever an earlier one is
   * deleted mid-run, and such a record must not be flagged deleted. Found ones are written back; 404s are gone.
   */
  async function confirmGone(externalIds: string[]): Promise<string[]> {
    const fetchOne = deps.source.fetchOne?.bind(deps.source);
    if (!fetchOne || externalIds.length === 0 || externalIds.length > VERIFY_UNSEEN_LIMIT) return externalIds;
    const gone: string[] = [];
    const found: CustomerDoc[] = [];
    const rejected: Rejected[] = [];
    for (const id of externalIds) {
      const raw = await withToken((ctx) => fetchOne(ctx, id));
      if (raw === null) {
        gone.push(id);
        continue;
      }
      const r = deps.source.mapCustomer(raw);
      if (r.ok) found.push(buildCustomerDoc(key, r.customer, raw, contentHash(raw), now()));
      else if (r.skip)
        gone.push(id); // no longer a customer (turned into a vendor only)
      else rejected.push({ externalId: id, reason: r.reason, raw });
    }
    const written = await writeWithIntent(found);
    cp.counts.upserted += written.upserted;
    cp.counts.modified += written.modified;
    cp.counts.quarantined += await writeQuarantine(quarantine, key, input.syncWorkflowId, rejected, now());
    return gone;
  }

  async function checkpoint(): Promise<void> {
    await checkpointRun(runs, runKey, cp, now());
    await deps.onCheckpoint?.(structuredClone(cp));
  }

  // Full runs read the partition's stored hashes once (also the deletion candidates); incremental runs look up by `_id`.
  const preloaded = mode === 'full' && cp.phase !== 'done' ? await PreloadedHashes.load(colls.hashes, key) : null;
  const view: HashView = preloaded ?? new PointHashes(colls.hashes);
  // Customers a crashed write stored without their hash entry: deletion candidates too (read before this attempt writes).
  const leftovers = preloaded ? await loadWriteIntents(intents, prefix) : null;

  /** Writes a page's customers behind a write-ahead intent for the ids without a live hash entry (see seen.ts). */
  async function writeWithIntent(docs: CustomerDoc[]) {
    const unknown = preloaded ? docs.filter((d) => preloaded.stored.get(d._id)?.deleted !== false) : docs;
    const intent = await recordWriteIntent(intents, prefix, [...new Set(unknown.map((d) => d._id))], now());
    const written = await writeCustomers(colls, docs, view, stamper);
    await clearWriteIntent(intents, intent);
    return written;
  }

  /** Validates, writes and checkpoints one page (pages come here strictly in listing order). */
  async function writePage(page: CustomerPage): Promise<void> {
    const at = now();
    cp.serverStartedAt ??= (page.serverTime ?? at).toISOString();
    if (page.total !== undefined) cp.total ??= page.total;
    const docs: CustomerDoc[] = [];
    const mapped: NormalizedCustomer[] = [];
    const rejected: Rejected[] = [];
    const seenIds: string[] = [];
    for (const raw of page.records) {
      const r = deps.source.mapCustomer(raw);
      if (r.ok) {
        mapped.push(r.customer);
        seenIds.push(r.customer.externalId);
        docs.push(buildCustomerDoc(key, r.customer, raw, contentHash(raw), at));
      } else if (!r.skip) {
        rejected.push({ externalId: r.externalId, reason: r.reason, raw });
        // A customer whose latest version is malformed still exists: never reconcile it away.
        if (r.externalId) seenIds.push(r.externalId);
      }
    }
    const written = await writeWithIntent(docs);
    const quarantined = await writeQuarantine(quarantine, key, input.syncWorkflowId, rejected, at);
    cp.counts.pages += 1;
    if (mode === 'full') await recordSeen(seenColl, runKey, cp.counts.pages, seenIds, at);
    cp.counts.fetched += page.records.length;
    cp.counts.upserted += written.upserted;
    cp.counts.modified += written.modified;
    cp.counts.quarantined += quarantined;
    cp.watermark = advanceWatermark(cp.watermark, mapped);
    cp.cursor = page.nextCursor;
    if (!page.nextCursor) cp.phase = 'deletions';
    await checkpoint();
  }

  try {
    if (cp.phase === 'customers') {
      let cursor = cp.cursor ?? deps.source.startCursor(mode, since);
      const fetchPage = (c: Cursor) => withToken((ctx) => deps.source.fetchPage(ctx, c, { pageSize: deps.pageSize }));
      const concurrency = Math.max(1, Math.floor(deps.pageConcurrency ?? 1));
      /** Pages fetched ahead of their turn, and the `$total` their plan was made from. */
      let ahead: { pages: ReadAhead<PlannedPage, CustomerPage>; total: number | undefined } | null = null;
      try {
        for (;;) {
          let page: CustomerPage | null = null;
          if (ahead) {
            const taken: { item: PlannedPage; page: CustomerPage } | null = await ahead.pages.take();
            if (taken && taken.page.pageNumber === taken.item.pageNumber && taken.page.total === ahead.total) {
              page = taken.page;
            } else if (taken) {
              // Sage quirk: `$total` moved while we paged (customers created or deleted meanwhile), or a page past the
              // new end answered the last page again. The pages fetched ahead were numbered for a listing that no longer
              // exists: drop them and read on from the last page written, with a plan made from a fresh answer.
              deps.log?.warn(
                {
                  partitionId: key.partitionId,
                  planned: ahead.total,
                  now: taken.page.total,
                  page: taken.item.pageNumber,
                  answered: taken.page.pageNumber,
                },
                'Sage total changed while paging: re-planning from the last page written',
              );
              ahead.pages.abandon();
              ahead = null;
            } else {
              ahead = null; // plan exhausted; Sage's `$next` (if any) goes on one page at a time
            }
          }
          page ??= await fetchPage(cursor);
          if (concurrency > 1 && !ahead && page.nextCursor && deps.source.plannedPagesAfter) {
            const plan = deps.source.plannedPagesAfter(page, cursor);
            if (plan.length > 1)
              ahead = { pages: new ReadAhead(plan, (item) => fetchPage(item.cursor), concurrency), total: page.total };
          }
          await writePage(page);
          if (!page.nextCursor) break;
          cursor = page.nextCursor;
        }
      } finally {
        ahead?.pages.abandon();
      }
    }

    if (cp.phase === 'deletions') {
      if (mode === 'full') {
        // Only reached when every page was read without error: what was not seen is gone from Sage.
        const seen = await loadSeen(seenColl, runKey, cp.counts.pages);
        const stored = new Set([...(preloaded?.liveIds() ?? []), ...(leftovers?.ids ?? [])]);
        const candidates = unseenIds(key, [...stored], seen);
        const gone = await confirmGone(candidates);
        cp.counts.deleted += await flagDeleted(
          colls,
          gone.map((id) => customerId(key, id)),
          now(),
          undefined,
          stamper,
        );
        // Every intent read at this attempt's start is settled now: its ids were seen (and written) or reconciled.
        if (leftovers) await dropWriteIntents(intents, leftovers.docIds);
      } else if (deps.source.deletions && deletionsFrom) {
        const feed = deps.source.deletions;
        let cursor = cp.cursor ?? feed.startCursor(deletionsFrom);
        for (;;) {
          const page = await withToken((ctx) => feed.fetchPage(ctx, cursor, { pageSize: deps.pageSize }));
          cp.counts.deleted += await flagDeletedExternal(colls, key, page.deletions, now(), stamper);
          cp.counts.pages += 1;
          cp.deletionPages += 1;
          cp.cursor = page.nextCursor;
          if (!page.nextCursor) break;
          await checkpoint();
          cursor = page.nextCursor;
        }
      }
      cp.phase = 'done';
      cp.cursor = null;
      await checkpoint();
    }

    // Every write of this partition is committed: readers' horizon may pass its numbers now.
    await stamper?.close();
    const finishedAt = now();
    const serverStart = cp.serverStartedAt ? new Date(cp.serverStartedAt) : finishedAt;
    const watermark = maxWatermark(state?.watermark, cp.watermark);
    await saveState(
      stateColl,
      syncStateId(key),
      {
        ...key,
        watermark,
        // The deletion feed restarts a little before this run started (exclusive bound; flagging twice is a no-op).
        deletionsSince: new Date(serverStart.getTime() - deps.overlapSeconds * 1000),
        lastFullSyncAt: mode === 'full' ? serverStart : (state?.lastFullSyncAt ?? null),
        lastSyncAt: finishedAt,
      },
      finishedAt,
    );
    await finishRun(
      runs,
      runKey,
      {
        status: 'succeeded',
        counts: cp.counts,
        watermarkTo: watermark ? new Date(watermark.updatedAt) : null,
        error: null,
      },
      finishedAt,
    );
    if (mode === 'full') await clearSeen(seenColl, runKey, cp.counts.pages);
    deps.log?.info({ partitionId: key.partitionId, mode, ...cp.counts }, 'partition sync succeeded');
    return {
      partitionId: key.partitionId,
      checkpoint: cp,
      summary: { finishedAt: finishedAt.toISOString(), status: 'succeeded', mode, ...countsOnly(cp) },
    };
  } catch (err) {
    // Progress so far stays in the checkpoint; the status says `running` until the attempt that gives up marks it.
    await checkpointRun(runs, runKey, cp, now()).catch(() => {});
    // This attempt writes nothing more (a retry opens its own reservation); if this fails, the retry replaces it.
    await stamper?.close().catch(() => {});
    throw Object.assign(err instanceof Error ? err : new Error(errorText(err)), { checkpoint: cp });
  }
}

function countsOnly(cp: Checkpoint) {
  const { fetched, upserted, modified, deleted, quarantined } = cp.counts;
  return { fetched, upserted, modified, deleted, quarantined };
}

/** Marks a run failed for good (after the last retry, or on a non-retryable error). */
export async function markRunFailed(
  mongo: Mongo,
  fields: PartitionKey & { syncWorkflowId: string; mode: SyncMode },
  error: string,
  now = new Date(),
  /** Why Sage refused the partition (`subscription_inactive`, …), or null for any other failure. */
  reason: AccessReason | null = null,
): Promise<RunCounts> {
  const runs = mongo.collection<SyncRunDoc>(COLLECTIONS.syncRuns);
  const runKey = syncRunId(fields.syncWorkflowId, fields.partitionId);
  const doc = await runs.findOne({ _id: runKey });
  const counts = doc?.checkpoint?.counts ?? zeroCounts();
  // The failed run's seen-id pages are of no further use (the next full run starts over).
  if (fields.mode === 'full')
    await clearSeen(mongo.db.collection<SeenPageDoc>(COLLECTIONS.syncSeen), runKey, counts.pages);
  await runs.updateOne(
    { _id: runKey },
    {
      $set: {
        ...fields,
        ...counts,
        status: 'failed',
        error: error.slice(0, 2000),
        reason,
        finishedAt: now,
        updatedAt: now,
      },
      $setOnInsert: { startedAt: now, watermarkFrom: null, watermarkTo: null, checkpoint: null, attempt: 0 },
    },
    { upsert: true },
  );
  return counts;
}

export type { Checkpoint } from './runs.js';
