/**
 * Token activities: crash-safe refresh, revoke, delete (the code exchange is in `consent.ts`). The workflow decides *when*; these decide *how*,
 * with the token store as the source of truth:
 *
 * - A refresh is idempotent per source version. If the store already holds a newer version (an earlier attempt stored
 *   it, then the worker died before reporting back), it is returned without calling Sage.
 * - Before calling Sage a write-ahead marker (`pendingRefresh`) is stored, so a later attempt knows an earlier one may
 *   have reached Sage; an `invalid_grant` then is reported as `refresh_response_lost`, not as a revoked grant.
 * - A token answer from Sage is never thrown away: it goes to an in-process outbox first, and if storing fails the
 *   store is retried (in this attempt and by later attempts in this process), never the Sage call.
 * - `invalid_grant` / `invalid_client` / `unauthorized_client` are definitive unless the store shows a lost race.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { activityInfo, heartbeat } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { SageOAuthError, toActivityFailure } from '../errors.js';
import { countReauthorization, countTokenRefresh } from '../lib/metrics.js';
import { COLLECTIONS } from '../lib/mongo.js';
import type { Provider } from '../messages.js';
import { oauthFor, type TokenSet } from '../providers/oauth.js';
import { keyRingFromConfig } from '../temporal/data-converter.js';
import { crashPoint } from '../tokens/crash-points.js';
import {
  commitRefresh,
  deleteTokenDoc,
  markRefreshPending,
  metaOf,
  openTokens,
  readTokenDoc,
  type PreviousRefresh,
  type TokenDoc,
  type TokenMeta,
} from '../tokens/store.js';
import type { ActivityDeps } from './deps.js';

export const OAUTH_FAILURE_TYPE = 'SageOAuthError';

/** Sage answers that arrived but are not stored yet, by `workflowId#fromVersion`. Lives as long as the process. */
const outbox = new Map<string, { tokens: TokenSet; previous: PreviousRefresh }>();

export interface RefreshResult {
  /** False when the store had already moved on (nothing sent to Sage in this attempt). */
  calledSage: boolean;
  token: TokenMeta;
}

function oauthFailure(err: SageOAuthError, reason: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: OAUTH_FAILURE_TYPE,
    message: err.message,
    nonRetryable: err.definitive,
    details: [{ error: err.error, reason, description: err.description ?? null }],
  });
}

export function createTokenActivities(deps: ActivityDeps) {
  const { config, mongo, log } = deps;
  const ring = keyRingFromConfig(config);

  async function mirrorTokenTimes(doc: TokenDoc, refreshedAt: Date): Promise<void> {
    try {
      await mongo.collection(COLLECTIONS.connections).updateOne(
        { _id: doc._id } as never,
        {
          $set: {
            tenantId: doc.tenantId,
            provider: doc.provider,
            accessTokenExpiresAt: doc.accessTokenExpiresAt,
            refreshTokenExpiresAt: doc.refreshTokenExpiresAt,
            lastRefreshAt: refreshedAt,
            updatedAt: new Date(),
          },
        },
        { upsert: true },
      );
    } catch (err) {
      // A dashboard mirror; the workflow mirrors again on its next state change.
      log.warn({ err, workflowId: doc._id }, 'could not mirror token times into connections');
    }
  }

  /** Retries the store (not Sage) until it succeeds or this attempt has spent its budget. */
  async function storeWithRetry(workflowId: string, fromVersion: number, entry: { tokens: TokenSet; previous: PreviousRefresh }) {
    let delay = 250;
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await commitRefresh(mongo, ring, { id: workflowId, fromVersion, ...entry });
      } catch (err) {
        if (Date.now() > deadline) throw err;
        log.warn({ err, workflowId, fromVersion }, 'storing refreshed tokens failed; retrying the store (not the Sage call)');
        await sleep(delay);
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  async function refreshOnceInStore(p: { workflowId: string; provider: Provider; fromVersion: number }): Promise<RefreshResult> {
    const key = `${p.workflowId}#${p.fromVersion}`;
    let entry = outbox.get(key);
    if (!entry) {
      const doc = await readTokenDoc(mongo, p.workflowId);
      if (!doc) throw ApplicationFailure.create({ type: OAUTH_FAILURE_TYPE, nonRetryable: true, message: 'no stored tokens', details: [{ error: 'tokens_missing', reason: 'tokens_missing' }] });
      if (doc.version > p.fromVersion) return { calledSage: false, token: metaOf(doc) };
      if (doc.version < p.fromVersion) throw new Error(`token store for ${p.workflowId} is at version ${doc.version}, behind ${p.fromVersion}`);
      const { refreshToken } = openTokens(ring, doc);
      if (!refreshToken) throw ApplicationFailure.create({ type: OAUTH_FAILURE_TYPE, nonRetryable: true, message: 'no refresh token stored', details: [{ error: 'invalid_grant', reason: 'refresh_token_invalid' }] });
      const earlierAttemptMayHaveCalledSage = doc.pendingRefresh?.fromVersion === p.fromVersion;
      const attemptId = `${activityInfo().activityId}/${activityInfo().attempt}/${randomUUID()}`;
      if (!(await markRefreshPending(mongo, p.workflowId, p.fromVersion, attemptId))) {
        const now = await readTokenDoc(mongo, p.workflowId);
        if (now && now.version > p.fromVersion) return { calledSage: false, token: metaOf(now) };
        throw new Error(`token store for ${p.workflowId} changed under the refresh`);
      }
      crashPoint(config, 'refresh:before-sage');
      let tokens: TokenSet;
      try {
        tokens = await oauthFor(p.provider).refresh(config, refreshToken);
      } catch (err) {
        if (err instanceof SageOAuthError && err.definitive) {
          // Race check: if the store moved on meanwhile, the rejection is about a token we no longer need.
          const again = await readTokenDoc(mongo, p.workflowId);
          if (again && again.version > p.fromVersion) return { calledSage: false, token: metaOf(again) };
          const lost = earlierAttemptMayHaveCalledSage && err.error === 'invalid_grant';
          log.warn({ workflowId: p.workflowId, fromVersion: p.fromVersion, error: err.error, lost }, 'refresh rejected by Sage');
          throw oauthFailure(err, lost ? 'refresh_response_lost' : err.reason);
        }
        throw toActivityFailure(err);
      }
      entry = { tokens, previous: { refreshToken, refreshTokenExpiresAt: doc.refreshTokenExpiresAt, refreshTokenLifetimeSec: doc.refreshTokenLifetimeSec } };
      outbox.set(key, entry);
      crashPoint(config, 'refresh:after-sage');
    }
    const { stored, doc } = await storeWithRetry(p.workflowId, p.fromVersion, entry);
    outbox.delete(key);
    crashPoint(config, 'refresh:after-store');
    if (stored) await mirrorTokenTimes(doc, doc.obtainedAt);
    log.info({ workflowId: p.workflowId, version: doc.version, stored }, 'access token refreshed');
    return { calledSage: true, token: metaOf(doc) };
  }

  return {
    async refreshAccessToken(p: { workflowId: string; provider: Provider; fromVersion: number }): Promise<RefreshResult> {
      // Heartbeats let Temporal notice a dead worker within the heartbeat timeout (seconds), not the start-to-close
      // timeout; the retry on another worker then finds the write-ahead marker or the stored version.
      heartbeat();
      const beat = setInterval(() => heartbeat(), 2_000);
      try {
        const result = await refreshOnceInStore(p);
        countTokenRefresh(p.provider, result.calledSage ? 'refreshed' : 'already_current');
        return result;
      } catch (err) {
        const definitive = err instanceof ApplicationFailure && err.type === OAUTH_FAILURE_TYPE && err.nonRetryable;
        countTokenRefresh(p.provider, definitive ? 'rejected' : 'failed_transient');
        // A definitive rejection is what moves the connection to reauthorization_required.
        if (definitive) countReauthorization(p.provider, (err.details?.[0] as { reason?: string } | undefined)?.reason ?? 'unknown');
        throw err;
      } finally {
        clearInterval(beat);
      }
    },

    /** Revokes the grant at Sage (disconnect). An already-dead grant counts as revoked. */
    async revokeTokens(p: { workflowId: string; provider: Provider }): Promise<'revoked' | 'nothing_to_revoke' | 'already_invalid'> {
      const doc = await readTokenDoc(mongo, p.workflowId);
      if (!doc) return 'nothing_to_revoke';
      const { refreshToken } = openTokens(ring, doc);
      if (!refreshToken) return 'nothing_to_revoke';
      try {
        await oauthFor(p.provider).revoke(config, refreshToken);
        return 'revoked';
      } catch (err) {
        if (err instanceof SageOAuthError && err.error === 'invalid_grant') return 'already_invalid';
        throw toActivityFailure(err);
      }
    },

    async deleteTokens(p: { workflowId: string }): Promise<void> {
      await deleteTokenDoc(mongo, p.workflowId);
      outbox.forEach((_v, k) => k.startsWith(`${p.workflowId}#`) && outbox.delete(k));
    },
  };
}
