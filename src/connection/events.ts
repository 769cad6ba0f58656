/**
 * The connection machine's one entry point for state changes: `reduce(state, event, now) → transition`. Every event the
 * `tenantConnection` shell observes (an activity answered, a message arrived, a command failed) is one member of
 * `MachineEvent`; the shell never writes the state itself. The per-event reducers stay in `machine.ts` (their unit
 * tests call them directly); this module only names the events and fills the defaults the shell used to decide.
 * Sandbox-safe (workflow code imports it).
 */
import type { PartitionSyncSummary } from '../messages.js';
import { classifyRefreshFailure, type FailureInfo } from './decisions.js';
import * as M from './machine.js';

export type MachineEvent =
  /** A consent URL was minted (status renewal or a `/connect` click). */
  | { type: 'consentIssued'; consent: M.Consent }
  /** `completeAuthorization` accepted a `state`: single-use from here, whatever happens next. */
  | { type: 'consentConsumed'; state: string }
  /** The code exchange failed (Sage's reason, if it named one, is in the failure's details). */
  | { type: 'codeExchangeFailed'; failure: FailureInfo }
  | {
      type: 'consentCompleted';
      token: M.TokenInfo;
      country: string | null;
      test: M.ConnectionTestResult;
      reconsent?: Extract<M.ReconsentVerdict, { accept: true }>;
    }
  | { type: 'reconsentRefused'; test: M.ConnectionTestResult; verdict: Extract<M.ReconsentVerdict, { accept: false }> }
  /** Sage redirected back with `?error=` for one of our states. */
  | { type: 'consentDenied'; state: string; error: string; description?: string }
  | { type: 'connectionTested'; test: M.ConnectionTestResult }
  | { type: 'refreshSucceeded'; token: M.TokenInfo; calledSage: boolean }
  /** The refresh activity failed after its retries; `classifyRefreshFailure` decides whether that is definitive. */
  | { type: 'refreshFailed'; failure: FailureInfo }
  /** `syncNow` (mode absent = incremental, contract §3). */
  | { type: 'syncRequested'; mode?: 'incremental' | 'full' }
  | { type: 'syncReported'; partitionId: string; summary: PartitionSyncSummary; fullSyncRequestId?: string }
  /** A `notify` command ran: the event joins the carried queue (its delivery is the newest pending notification). */
  | { type: 'notificationQueued'; eventType: M.NotificationEvent['type'] }
  | { type: 'notificationSettled'; eventId: string }
  /** A command's activity still failed after its retry policy: visible, not fatal. */
  | { type: 'commandFailed'; command: M.Command['type']; message: string }
  | { type: 'disconnected' }
  /** The disconnect cleanup ran; `revokeError` is set when revoking at Sage failed (tokens are deleted anyway). */
  | { type: 'cleanupFinished'; revokeError: string | null };

const stateOnly = (state: M.MachineState): M.Transition => ({ state, commands: [] });

export function reduce(s: M.MachineState, e: MachineEvent, now: number): M.Transition {
  switch (e.type) {
    case 'consentIssued':
      return stateOnly(M.consentIssued(s, e.consent, now));
    case 'consentConsumed':
      return stateOnly(M.consentConsumed(s, e.state));
    case 'codeExchangeFailed':
      return M.consentFailed(s, { reason: e.failure.reason ?? 'authorization_failed', message: e.failure.message });
    case 'consentCompleted':
      return M.consentCompleted(s, {
        token: e.token,
        country: e.country,
        test: e.test,
        now,
        ...(e.reconsent ? { reconsent: e.reconsent } : {}),
      });
    case 'reconsentRefused':
      return M.reconsentRefused(s, { test: e.test, verdict: e.verdict, now });
    case 'consentDenied':
      return M.consentDenied(
        s,
        { state: e.state, error: e.error, ...(e.description !== undefined ? { description: e.description } : {}) },
        now,
      );
    case 'connectionTested':
      return M.connectionTested(s, e.test, now);
    case 'refreshSucceeded':
      return M.refreshSucceeded(s, e.token, now, { calledSage: e.calledSage });
    case 'refreshFailed':
      return M.refreshFailed(s, classifyRefreshFailure(e.failure), now);
    case 'syncRequested':
      return M.syncRequested(s, e.mode ?? 'incremental', now);
    case 'syncReported':
      return M.syncReported(s, e.partitionId, e.summary, e.fullSyncRequestId);
    case 'notificationQueued':
      return stateOnly(M.notificationQueued(s, e.eventType, now).state);
    case 'notificationSettled':
      return stateOnly(M.notificationSettled(s, e.eventId));
    case 'commandFailed':
      return stateOnly({ ...s, lastError: `${e.command} failed: ${e.message}` });
    case 'disconnected':
      return stateOnly(M.disconnected(s));
    case 'cleanupFinished':
      return stateOnly({ ...s, lastError: e.revokeError === null ? null : `revoke at Sage failed: ${e.revokeError}` });
  }
}
