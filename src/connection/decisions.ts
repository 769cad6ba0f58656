/**
 * The decisions the `tenantConnection` shell asks the machine for, besides state changes (`events.ts`): who may call
 * an update now, what a token request gets after a refresh, what a failed refresh means, what keep-alive does next.
 * Pure and sandbox-safe; the shell only turns the answers into Temporal failures and activity calls.
 */
import { ErrorTypes } from '../error-types.js';
import type { AccessTokenLease, GetAccessTokenInput } from '../messages.js';
import * as M from './machine.js';
import type { Reason } from './reasons.js';

/** What the shell reads off a failed activity (an `ApplicationFailure` from `src/errors.ts`, or anything else). */
export interface FailureInfo {
  type: string | null;
  nonRetryable: boolean;
  /** Our activities' failure details carry the machine's reason codes (read off the wire: typed, not checked). */
  reason: Reason | null;
  message: string;
}

/**
 * Sage quirk (invalid_grant for expired, used and revoked refresh tokens alike): only a non-retryable SageOAuth
 * failure is definitive (the activity made it so after the store showed no lost race); anything else is transient.
 */
export function classifyRefreshFailure(f: FailureInfo): M.RefreshFailure {
  return {
    definitive: f.type === ErrorTypes.SageOAuth && f.nonRetryable,
    reason: f.reason ?? 'refresh_token_invalid',
    message: f.message,
  };
}

/** Why an update may not run now (null = it may); the shell throws the matching failure. */
export type Refusal =
  | { kind: 'reauthorize'; reason: string }
  | { kind: 'invalidState'; message: string }
  | { kind: 'retryLater'; message: string };

const CONTINUING = 'connection is continuing as new; retry';

/** The shell's own conditions that refusals depend on (Temporal mechanics it tracks, not machine state). */
export interface ShellFlags {
  disconnecting: boolean;
  draining: boolean;
  authorizing?: boolean;
}

/** `getAccessToken` validator. */
export function admitTokenRequest(s: M.MachineState, f: ShellFlags): Refusal | null {
  if (s.state !== 'connected') return { kind: 'reauthorize', reason: s.reason ?? s.state };
  if (f.disconnecting) return { kind: 'reauthorize', reason: 'disconnected' };
  if (f.draining) return { kind: 'retryLater', message: CONTINUING };
  return null;
}

/** `completeAuthorization` validator (after the input parsed). */
export function admitConsentCompletion(s: M.MachineState, state: string, now: number, f: ShellFlags): Refusal | null {
  const why = M.checkConsentState(s, state, now);
  if (why) return { kind: 'invalidState', message: why };
  if (f.authorizing) return { kind: 'retryLater', message: 'another authorization is being completed' };
  if (f.draining) return { kind: 'retryLater', message: CONTINUING };
  return null;
}

/** `beginAuthorization` validator. */
export function admitConsentLink(s: M.MachineState, f: ShellFlags): Refusal | null {
  if (s.state === 'disconnected' || f.disconnecting)
    return { kind: 'invalidState', message: 'the connection is disconnected' };
  if (f.draining) return { kind: 'retryLater', message: CONTINUING };
  return null;
}

/**
 * A disconnect that arrived while a consent was being completed wins: the completion answers with the current status
 * and changes nothing (the disconnect's cleanup deletes the tokens just stored).
 */
export const supersededByDisconnect = (s: M.MachineState, f: Pick<ShellFlags, 'disconnecting'>): boolean =>
  f.disconnecting || s.state === 'disconnected';

export type TokenAnswer =
  | { kind: 'lease'; lease: AccessTokenLease }
  | { kind: 'refresh' }
  | { kind: 'reject'; reason: string }
  /** A refresh ran and did not help (transient failure, token nearly expired; or the rejected version is still current). */
  | { kind: 'unavailable'; message: string };

/**
 * `getAccessToken`, before and after the one shared refresh: before, the caller's request decides; after, a caller
 * whose rejected version is still the current one gets no token (the refresh failed), and a transient failure leaves
 * the current token if it outlives the skew floor.
 */
export function answerTokenRequest(
  s: M.MachineState,
  now: number,
  req: GetAccessTokenInput,
  refreshed: boolean,
): TokenAnswer {
  const unavailable = (): TokenAnswer => ({
    kind: 'unavailable',
    message: `refresh failed: ${s.lastError ?? 'unknown error'}`,
  });
  if (!refreshed) return M.decideAccess(s, now, req);
  if (
    req.rejectedTokenVersion !== undefined &&
    s.token?.version === req.rejectedTokenVersion &&
    s.state === 'connected'
  )
    return unavailable();
  const d = M.decideAccess(s, now, req.minValidSeconds !== undefined ? { minValidSeconds: req.minValidSeconds } : {});
  if (d.kind !== 'refresh') return d;
  const fallback = M.fallbackLease(s, now);
  return fallback ? { kind: 'lease', lease: fallback } : unavailable();
}

/** `disconnect` revokes at Sage unless told not to; an unreadable request still disconnects (and revokes). */
export function disconnectRequested(valid: boolean, revoke: boolean | undefined): { revoke: boolean } {
  return { revoke: valid ? (revoke ?? true) : true };
}

/** A consent link for the country the caller names, else the connection's. */
export const consentCountry = (s: M.MachineState, requested: string | undefined): string | null =>
  requested ?? s.country;

/** Arguments of the `testConnection` activity (the Sage 200 edition decides the API's base path). */
export function connectionTestArgs(s: M.MachineState, workflowId: string) {
  return {
    workflowId,
    provider: s.provider,
    ...(s.settings.sage200 ? { edition: s.settings.sage200.edition } : {}),
  };
}

/** Keep-alive: after the refresh, re-check what the consent reaches only if it produced a new token and still connected. */
export const keepAliveTestDue = (s: M.MachineState, versionBefore: number | undefined): boolean =>
  s.state === 'connected' && s.token?.version !== versionBefore;

/** What a due wake-up does: renew the status consent URL (a command), or refresh to keep the grant alive. */
export function wakeAction(action: M.WakeAction): { refresh: true } | { refresh: false; commands: M.Command[] } {
  if (action === 'renewConsent')
    return { refresh: false, commands: [{ type: 'issueConsent', ttlMs: M.STATUS_CONSENT_TTL_MS }] };
  return { refresh: true };
}
