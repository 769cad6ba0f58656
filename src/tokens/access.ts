/**
 * How any process gets a usable access token for a connection.
 *
 * Read path (the common case): read the token document and the connection mirror, and if the workflow's own policy
 * would lease the stored version as it is (`decideReadPath`: connected, no refresh started on it, outside the refresh
 * margin and long enough for `minValidSeconds`), decrypt and return it. No Temporal call, no history event.
 *
 * Otherwise ask the connection workflow (`getAccessToken` update), which refreshes at most once however many callers
 * and processes ask at the same time and answers with a version, then read and decrypt that version from the store.
 * The read path never refreshes and never calls Sage: every refresh is still decided by the workflow. No secret ever
 * travels through Temporal.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { isGrpcServiceError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { Config } from '../config.js';
import { ErrorTypes, readFailureDetails, ReauthorizationRequiredError, TokenUnavailableError } from '../errors.js';
import type { Mongo } from '../lib/mongo.js';
import { connectionWorkflowId, getAccessTokenUpdate, type Provider } from '../messages.js';
import { keyRingFromConfig } from '../lib/crypto.js';
import { Semaphore } from '../lib/semaphore.js';
import { connectionsCollection } from '../lib/connection-doc.js';
import { decideReadPath } from './read-path.js';
import { openTokens, readTokenDoc, type TokenDoc } from './store.js';

/** gRPC status codes (grpc-js is not a direct dependency). */
const grpcStatus = { NOT_FOUND: 5, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14 } as const;

/**
 * Temporal admits at most 10 updates in flight per workflow and answers RESOURCE_EXHAUSTED beyond that (the client then
 * backs off for seconds). Callers in one process queue here instead, below that limit; each still sends its own update,
 * so the workflow (not this queue) is what guarantees a single refresh across processes.
 */
const IN_FLIGHT_PER_CONNECTION = 8;
const limiters = new Map<string, { sem: Semaphore; users: number }>();
async function limited<T>(workflowId: string, fn: () => Promise<T>): Promise<T> {
  let entry = limiters.get(workflowId);
  if (!entry) limiters.set(workflowId, (entry = { sem: new Semaphore(IN_FLIGHT_PER_CONNECTION), users: 0 }));
  entry.users++;
  try {
    return await entry.sem.run(fn);
  } finally {
    if (--entry.users === 0) limiters.delete(workflowId);
  }
}

export { TokenUnavailableError };

export interface AccessTokenResult {
  accessToken: string;
  tokenVersion: number;
  expiresAt: string;
  /** The token's own life (seconds), so a holder can renew ahead of expiry with the same margin as the workflow. */
  lifetimeSec: number;
  /** Where the answer came from: the store alone, or the workflow (an update, maybe a refresh). */
  servedBy: 'store' | 'workflow';
}

/**
 * Concurrent callers of one connection in this process share one in-flight store read (coalescing, not caching: a
 * caller only joins a read that is already under way, and nothing is kept once it has answered). 1,000 callers then
 * cost one token read, one mirror read and one decryption, instead of 1,000 of each queueing for the driver's pool.
 */
interface StoreSnapshot {
  doc: TokenDoc | null;
  connection: { state?: string | null } | null;
  /**
   * The read path's answer per `minValidSeconds`, decided once for everyone who joined this read: their continuations
   * all run in the same microtask burst right after the read resolves, so they would decide the same thing at the same
   * `now` anyway, and 1,000 callers deciding one by one (input check, policy, ISO dates) cost ~10 µs each — most of the
   * storm's latency. Dropped with the snapshot: a later caller starts a new read and decides afresh.
   */
  answers: Map<string, AccessTokenResult | null>;
}
const inFlightReads = new Map<string, Promise<StoreSnapshot>>();
function readStore(deps: { mongo: Mongo }, workflowId: string): Promise<StoreSnapshot> {
  const key = `${deps.mongo.db.databaseName}/${workflowId}`;
  let p = inFlightReads.get(key);
  if (!p) {
    p = Promise.all([
      readTokenDoc(deps.mongo, workflowId),
      connectionsCollection(deps.mongo).findOne({ _id: workflowId }, { projection: { state: 1 } }),
    ])
      .then(([doc, connection]): StoreSnapshot => ({ doc, connection, answers: new Map() }))
      .finally(() => inFlightReads.delete(key));
    inFlightReads.set(key, p);
  }
  return p;
}

const resultOf = (doc: TokenDoc, accessToken: string, servedBy: AccessTokenResult['servedBy']): AccessTokenResult => ({
  accessToken,
  tokenVersion: doc.version,
  expiresAt: doc.accessTokenExpiresAt.toISOString(),
  lifetimeSec: doc.accessTokenLifetimeSec,
  servedBy,
});

/** The read path: the stored token when the workflow would lease it as it is, else null (ask the workflow). */
export async function readValidToken(
  deps: { mongo: Mongo; config: Config },
  conn: { tenantId: string; provider: Provider },
  opts: { rejectedTokenVersion?: number; minValidSeconds?: number } = {},
): Promise<AccessTokenResult | null> {
  const workflowId = connectionWorkflowId(conn.provider, conn.tenantId);
  if (opts.rejectedTokenVersion !== undefined) return null;
  const snap = await readStore(deps, workflowId);
  const key = String(opts.minValidSeconds);
  let answer = snap.answers.get(key);
  if (answer === undefined) {
    const d = decideReadPath(snap.doc, snap.connection, Date.now(), opts, { workflowId, ...conn });
    answer =
      d.use === 'store' && snap.doc
        ? resultOf(snap.doc, openTokens(keyRingFromConfig(deps.config), snap.doc).accessToken, 'store')
        : null;
    snap.answers.set(key, answer);
  }
  // A copy each: a caller that edits its result must not edit another caller's.
  return answer && { ...answer };
}

function isRetryLater(err: unknown): boolean {
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure)
    return err.cause.type === ErrorTypes.RetryLater;
  // The server allows 10 updates in flight per workflow; beyond that it answers RESOURCE_EXHAUSTED (the client has
  // already retried a few times by then). A run that just continued-as-new answers NOT_FOUND for a moment.
  // "workflow update was aborted" (UNAVAILABLE) happens when the run closes or its task is retried under load.
  const retryable = new Set<number>([grpcStatus.RESOURCE_EXHAUSTED, grpcStatus.NOT_FOUND, grpcStatus.UNAVAILABLE]);
  if (isGrpcServiceError(err)) return retryable.has(err.code);
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (cause && isGrpcServiceError(cause)) return retryable.has(cause.code);
  return false;
}

export async function acquireAccessToken(
  deps: { client: Client; mongo: Mongo; config: Config },
  conn: { tenantId: string; provider: Provider },
  opts: { rejectedTokenVersion?: number; minValidSeconds?: number; deadlineMs?: number } = {},
): Promise<AccessTokenResult> {
  const fromStore = await readValidToken(deps, conn, opts);
  if (fromStore) return fromStore;
  const workflowId = connectionWorkflowId(conn.provider, conn.tenantId);
  const handle = deps.client.workflow.getHandle(workflowId);
  const args = {
    ...(opts.minValidSeconds !== undefined ? { minValidSeconds: opts.minValidSeconds } : {}),
    ...(opts.rejectedTokenVersion !== undefined ? { rejectedTokenVersion: opts.rejectedTokenVersion } : {}),
  };
  const deadline = Date.now() + (opts.deadlineMs ?? 120_000);
  for (let attempt = 0; ; attempt++) {
    let lease;
    try {
      lease = await limited(workflowId, () => handle.executeUpdate(getAccessTokenUpdate, { args: [args] }));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        throw new ReauthorizationRequiredError('connection_not_found', `no connection workflow ${workflowId}`);
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
        if (err.cause.type === ErrorTypes.ReauthorizationRequired) {
          const reason = readFailureDetails(err.cause.details).reason ?? 'reauthorization_required';
          throw new ReauthorizationRequiredError(reason, err.cause.message);
        }
        if (err.cause.type === ErrorTypes.TokenUnavailable) throw new TokenUnavailableError(err.cause.message);
      }
      if (isRetryLater(err) && Date.now() < deadline) {
        // Jittered backoff so a crowd of callers does not come back in lockstep.
        await sleep(Math.min(2_000, 50 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
        continue;
      }
      throw err;
    }
    const doc = await readTokenDoc(deps.mongo, workflowId);
    if (!doc) throw new ReauthorizationRequiredError('tokens_missing', `no stored tokens for ${workflowId}`);
    // The store can only be ahead of the lease (a newer version is valid too), never behind it.
    if (doc.version < lease.tokenVersion)
      throw new Error(`token store for ${workflowId} is at version ${doc.version}, behind lease ${lease.tokenVersion}`);
    const tokens = openTokens(keyRingFromConfig(deps.config), doc);
    return resultOf(doc, tokens.accessToken, 'workflow');
  }
}
