/**
 * Token activities: crash-safe refresh, revoke, delete (the code exchange is in `consent.ts`). The workflow decides *when*; these decide *how*,
 * with the token store as the source of truth:
 *
 * - A refresh is idempotent per source version. If the store already holds a newer version (an earlier attempt stored
 *   it, then the worker died before reporting back), it is returned without calling Sage.
 * - Before calling Sage the attempt takes a refresh lease (a unique claim insert, owner + expiry, `store.ts`). An attempt
 *   that finds a live lease (an earlier attempt timed out by Temporal but still in its Sage call: a stalled process)
 *   waits for that owner's stored answer or the lease's end instead of presenting the same refresh token. A lease that
 *   ended without an answer leaves `doubt`, so a later `invalid_grant` is reported as `refresh_response_lost`.
 * - A token answer from Sage is never thrown away: it is sealed into the activity's heartbeat details (a retry on
 *   another worker stores it) and kept in an in-process outbox; storing is retried for the attempt's whole life.
 * - Waiting for another attempt's lease ends on the activity's cancellation; the Sage call itself is never aborted by it
 *   (an aborted call can lose a rotated pair), only bounded by got's timeout.
 * - `invalid_grant` / `invalid_client` / `unauthorized_client` are definitive unless the store shows a lost race.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { activityInfo, Context } from '@temporalio/activity';
import { mappingFailures, RefreshLeaseHeldError, SageApiError, SageNetworkError, SageOAuthError } from '../errors.js';
import { writeTokenTimes } from '../lib/connection-doc.js';
import { countReauthorization, countTokenRefresh } from '../lib/metrics.js';
import type { Provider } from '../messages.js';
import { oauthFor, REFRESH_CALL_TIMEOUT_MS, type TokenSet } from '../providers/oauth.js';
import { keyRingFromConfig } from '../lib/crypto.js';
import { crashPoint } from '../tokens/crash-points.js';
import {
  acquireRefreshLease,
  commitRefresh,
  deleteTokenDoc,
  leaseState,
  metaOf,
  openCarriedAnswer,
  openTokens,
  readTokenDoc,
  releaseRefreshLease,
  sealCarriedAnswer,
  type CarriedAnswer,
  type PreviousRefresh,
  type RefreshLease,
  type TokenDoc,
  type TokenMeta,
} from '../tokens/store.js';
import type { ActivityDeps } from './deps.js';

/** Network failures that prove the request never left us (so the refresh token was not presented). */
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a failed token call may have made Sage rotate the refresh token. An OAuth error body or a 429 is Sage saying
 * "no" before it rotated; a refused connection never reached it. Timeouts, resets, aborts, 5xx and unreadable 200s
 * may have come after the rotation.
 */
export function mayHaveReachedSage(err: unknown): boolean {
  if (err instanceof SageOAuthError) return false;
  if (err instanceof SageApiError) return err.status !== 429 && !(err.status >= 300 && err.status < 400);
  if (err instanceof SageNetworkError) return !NEVER_SENT_CODES.has(err.code);
  return true;
}

/** Sage answers that arrived but are not stored yet, by `workflowId#fromVersion`, for later attempts in this process. */
const outbox = new Map<string, { tokens: TokenSet; previous: PreviousRefresh }>();

export interface RefreshResult {
  /** False when the store had already moved on (nothing sent to Sage in this attempt). */
  calledSage: boolean;
  token: TokenMeta;
  /** True when this attempt wrote the token times into `connections` (the workflow then need not mirror them). */
  mirrored?: boolean;
}

/**
 * Mirrors a token document's times into `connections` (a dashboard copy: the workflow mirrors again on its next state
 * change, so a failure is only logged). Used after a refresh and after a code exchange.
 */
export async function mirrorTokenTimes(deps: Pick<ActivityDeps, 'mongo' | 'log'>, doc: TokenDoc): Promise<boolean> {
  try {
    await writeTokenTimes(deps.mongo, doc);
    return true;
  } catch (err) {
    deps.log.warn({ err, workflowId: doc._id }, 'could not mirror token times into connections');
    return false;
  }
}

export function createTokenActivities(deps: ActivityDeps) {
  const { config, mongo, log } = deps;
  const ring = keyRingFromConfig(config);

  type Answer = { tokens: TokenSet; previous: PreviousRefresh };
  /** When this attempt must be done: its start-to-close timeout, less a margin to report back. */
  function attemptDeadline(): number {
    const info = activityInfo();
    return info.currentAttemptScheduledTimestampMs + info.startToCloseTimeoutMs - 5_000;
  }

  /** Retries the store (never Sage) for the attempt's whole life: MongoDB may be down for minutes. */
  async function storeWithRetry(workflowId: string, fromVersion: number, entry: Answer) {
    let delay = 250;
    const deadline = attemptDeadline();
    for (;;) {
      try {
        return await commitRefresh(mongo, ring, { id: workflowId, fromVersion, ...entry });
      } catch (err) {
        if (Date.now() + delay > deadline) throw err;
        log.warn(
          { err, workflowId, fromVersion },
          'storing refreshed tokens failed; retrying the store (not the Sage call)',
        );
        await sleep(delay);
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  /** Reads the token document; a store that cannot be read is a transient failure (the attempt is retried). */
  async function readDoc(workflowId: string): Promise<TokenDoc> {
    const doc = await readTokenDoc(mongo, workflowId, { withLease: true });
    if (!doc) throw SageOAuthError.local('tokens_missing', 'tokens_missing', 'no stored tokens');
    return doc;
  }

  /**
   * Waits until the refresh lease on `fromVersion` is ours, or the store moved on (then returns that document). While
   * another attempt's lease is live, only the store is polled: that owner may still get Sage's answer and store it.
   */
  async function leaseOrNewer(p: {
    workflowId: string;
    fromVersion: number;
  }): Promise<{ lease: RefreshLease; doc: TokenDoc } | { newer: TokenDoc }> {
    const attemptId = `${activityInfo().activityId}/${activityInfo().attempt}/${randomUUID()}`;
    const signal = Context.current().cancellationSignal;
    let waitedFor: string | null = null;
    for (;;) {
      const doc = await readDoc(p.workflowId);
      if (doc.version > p.fromVersion) return { newer: doc };
      if (doc.version < p.fromVersion)
        throw new Error(`token store for ${p.workflowId} is at version ${doc.version}, behind ${p.fromVersion}`);
      const state = leaseState(doc, p.fromVersion, new Date());
      if (state.kind === 'live') {
        if (waitedFor !== state.lease.attemptId) {
          waitedFor = state.lease.attemptId;
          log.warn(
            {
              workflowId: p.workflowId,
              fromVersion: p.fromVersion,
              owner: state.lease.attemptId,
              endsAt: state.endsAt,
            },
            'another attempt holds the refresh lease; waiting for its answer instead of calling Sage',
          );
        }
        if (signal.aborted) throw signal.reason;
        if (Date.now() > attemptDeadline())
          throw new RefreshLeaseHeldError('refresh lease still held by another attempt');
        await sleep(Math.min(1_000, Math.max(50, state.endsAt.getTime() - Date.now())));
        continue;
      }
      const lease = await acquireRefreshLease(mongo, {
        id: p.workflowId,
        fromVersion: p.fromVersion,
        attemptId,
        seen: doc,
      });
      if (lease) return { lease, doc };
      // Someone changed the document between our read and our write: read again.
    }
  }

  async function refreshOnceInStore(
    p: { workflowId: string; provider: Provider; fromVersion: number },
    carry: (c: CarriedAnswer) => void,
  ): Promise<RefreshResult> {
    const key = `${p.workflowId}#${p.fromVersion}`;
    // An earlier attempt (maybe on a worker that died) may have got Sage's answer without storing it.
    let entry: Answer | null | undefined = null;
    try {
      entry = openCarriedAnswer(ring, p.workflowId, p.fromVersion, activityInfo().heartbeatDetails);
    } catch (err) {
      // Unreadable (e.g. its key was dropped): fall back to the store and the lease, which stay correct without it.
      log.warn(
        { err, workflowId: p.workflowId, fromVersion: p.fromVersion },
        'could not open the refresh answer carried in heartbeat details',
      );
    }
    if (entry) {
      log.warn(
        { workflowId: p.workflowId, fromVersion: p.fromVersion },
        'storing the refresh answer carried from an earlier attempt (Sage is not called again)',
      );
      carry(sealCarriedAnswer(ring, p.workflowId, p.fromVersion, entry));
    } else entry = outbox.get(key);
    if (!entry) {
      const got = await leaseOrNewer(p);
      if ('newer' in got) return { calledSage: false, token: metaOf(got.newer) };
      const { lease, doc } = got;
      const { refreshToken } = openTokens(ring, doc);
      if (!refreshToken) {
        await releaseRefreshLease(mongo, { id: p.workflowId, lease, mayHaveReachedSage: false }).catch(() => {});
        throw SageOAuthError.local('invalid_grant', 'refresh_token_invalid', 'no refresh token stored');
      }
      crashPoint(config, 'refresh:before-sage');
      let tokens: TokenSet;
      try {
        // Deliberately NOT aborted by the activity's cancellation: once the request is on the wire, Sage may rotate the
        // pair, and an aborted call throws that answer away (the retry would then present a dead refresh token). A
        // timed-out attempt that is only stalled keeps its lease, finishes the call within got's own timeout and stores
        // the answer, which the retry is waiting for. Cancellation still ends the waiting in `leaseOrNewer`.
        tokens = await oauthFor(p.provider).refresh(config, refreshToken, { timeoutMs: REFRESH_CALL_TIMEOUT_MS });
      } catch (err) {
        // The call is over without an answer: nobody needs to wait for this lease any more.
        await releaseRefreshLease(mongo, {
          id: p.workflowId,
          lease,
          mayHaveReachedSage: mayHaveReachedSage(err),
        }).catch((e: unknown) =>
          log.warn({ err: e, workflowId: p.workflowId }, 'could not release the refresh lease (it will expire)'),
        );
        if (err instanceof SageOAuthError && err.definitive) {
          // Race check: if the store moved on meanwhile, the rejection is about a token we no longer need.
          const again = await readTokenDoc(mongo, p.workflowId);
          if (again && again.version > p.fromVersion) return { calledSage: false, token: metaOf(again) };
          const lost = lease.doubt === true && err.error === 'invalid_grant';
          log.warn(
            { workflowId: p.workflowId, fromVersion: p.fromVersion, error: err.error, lost },
            'refresh rejected by Sage',
          );
          throw lost ? err.withReason('refresh_response_lost') : err;
        }
        throw err;
      }
      entry = {
        tokens,
        previous: {
          refreshToken,
          refreshTokenExpiresAt: doc.refreshTokenExpiresAt,
          refreshTokenLifetimeSec: doc.refreshTokenLifetimeSec,
        },
      };
      outbox.set(key, entry);
      crashPoint(config, 'refresh:after-sage');
      carry(sealCarriedAnswer(ring, p.workflowId, p.fromVersion, entry));
    }
    const { stored, doc } = await storeWithRetry(p.workflowId, p.fromVersion, entry);
    outbox.delete(key);
    crashPoint(config, 'refresh:after-store');
    const mirrored = stored && (await mirrorTokenTimes(deps, doc));
    log.info({ workflowId: p.workflowId, version: doc.version, stored }, 'access token refreshed');
    return { calledSage: true, token: metaOf(doc), mirrored };
  }

  return mappingFailures({
    async refreshAccessToken(p: {
      workflowId: string;
      provider: Provider;
      fromVersion: number;
    }): Promise<RefreshResult> {
      // Heartbeats let Temporal notice a dead worker within the heartbeat timeout, not the start-to-close timeout; the
      // retry on another worker then finds the lease, the stored version, or (in the details) Sage's sealed answer.
      // The worker caps its heartbeat throttle (worker.ts), so the server hears one every few seconds.
      let details: CarriedAnswer | undefined;
      const beat = () => Context.current().heartbeat(details);
      beat();
      const timer = setInterval(beat, 1_000);
      try {
        const result = await refreshOnceInStore(p, (c) => {
          details = c;
          beat();
        });
        countTokenRefresh(p.provider, result.calledSage ? 'refreshed' : 'already_current');
        return result;
      } catch (err) {
        const definitive = err instanceof SageOAuthError && err.definitive;
        countTokenRefresh(p.provider, definitive ? 'rejected' : 'failed_transient');
        // A definitive rejection is what moves the connection to reauthorization_required.
        if (definitive) countReauthorization(p.provider, err.reason);
        throw err;
      } finally {
        clearInterval(timer);
      }
    },

    /** Revokes the grant at Sage (disconnect). An already-dead grant counts as revoked. */
    async revokeTokens(p: {
      workflowId: string;
      provider: Provider;
    }): Promise<'revoked' | 'nothing_to_revoke' | 'already_invalid'> {
      const doc = await readTokenDoc(mongo, p.workflowId);
      if (!doc) return 'nothing_to_revoke';
      const { refreshToken } = openTokens(ring, doc);
      if (!refreshToken) return 'nothing_to_revoke';
      try {
        await oauthFor(p.provider).revoke(config, refreshToken);
        return 'revoked';
      } catch (err) {
        if (err instanceof SageOAuthError && err.error === 'invalid_grant') return 'already_invalid';
        throw err;
      }
    },

    async deleteTokens(p: { workflowId: string }): Promise<void> {
      await deleteTokenDoc(mongo, p.workflowId);
      outbox.forEach((_v, k) => k.startsWith(`${p.workflowId}#`) && outbox.delete(k));
    },
  });
}
