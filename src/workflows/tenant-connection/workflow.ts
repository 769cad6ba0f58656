/**
 * `tenantConnection`: the one durable owner of a tenant's Sage tokens (contract §3). A thin Temporal shell around the
 * pure decision logic in `src/connection/machine.ts`: handlers feed events in, the main loop carries commands out as
 * activities, and a single durable timer wakes the workflow at its next deadline (keep-alive refresh, consent-URL
 * renewal). No polling: an idle connected tenant records a handful of events per refresh-token life, not per day.
 *
 * Concurrency: any number of `getAccessToken` callers share ONE in-flight refresh (a promise held by the workflow).
 * Temporal allows 10 updates in flight and 2,000 per run, so the run continues as new well before that, draining
 * handlers first and carrying the whole state.
 */
import * as wf from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import {
  authorizationDeniedSignal,
  beginAuthorizationUpdate,
  CompleteAuthorizationInput,
  completeAuthorizationUpdate,
  connectionWorkflowId,
  ConnectionStateSearchAttribute,
  describeZodError,
  disconnectSignal,
  DisconnectInput,
  GetAccessTokenInput,
  getAccessTokenUpdate,
  SageProviderSearchAttribute,
  statusQuery,
  syncNowSignal,
  syncPlanQuery,
  SyncNowInput,
  SyncReportInput,
  syncReportSignal,
  TenantIdSearchAttribute,
  type ConnectionStatus,
} from '../../messages.js';
import * as D from '../../connection/decisions.js';
import { reduce, type MachineEvent } from '../../connection/events.js';
import * as M from '../../connection/machine.js';
import {
  failureInfo,
  invalidInput,
  reauthorizationRequired,
  reconsentRefused,
  refusalFailure,
  tokenUnavailable,
} from '../failures.js';

/** Continue as new past this many history events (the server suggests it near 10 k as well). */
const DEFAULT_MAX_HISTORY_EVENTS = 8_000;
/** Temporal rejects updates beyond 2,000 per run; leave room for the ones that arrive while draining. */
const MAX_UPDATES_PER_RUN = 1_000;

// Refresh: idempotent per source version (see activities/tokens.ts), so Temporal retries are safe. A few attempts,
// then the failure is classified and the workflow's own backoff takes over.
const refreshActs = wf.proxyActivities<Activities>({
  // Long enough to keep retrying the store through a MongoDB outage of minutes with Sage's answer in hand (the answer
  // also rides in the heartbeat details, for a retry on another worker).
  startToCloseTimeout: '10m',
  // The activity heartbeats every second and the worker caps the SDK's throttle (0.8 × this timeout by default) at 2 s,
  // so a live attempt reaches the server every ~2 s: 13 s of slack before a stall counts as death. A timed-out attempt
  // that is only stalled still holds the refresh lease, so its retry waits instead of presenting the same token.
  heartbeatTimeout: '15s',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 4 },
});
// Code exchange: Sage's code lives 60 s and is single-use; one retry for a network blip or a dead worker, all within
// the code's life. The activity records the exchange by a hash of the code, so the retry after a crash returns the
// stored tokens instead of presenting the code again; heartbeats let that retry start seconds after a worker dies.
const exchangeActs = wf.proxyActivities<Activities>({
  startToCloseTimeout: '25s',
  scheduleToCloseTimeout: '55s',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', maximumAttempts: 2 },
});
/**
 * Marks the history economy of issue 14: the wake-up timer is re-armed only when its deadline moves earlier (never
 * cancelled and re-armed for nothing), and `connections` is written only when what a reader sees there changed and
 * no activity wrote it already (the refresh writes token times, the partition sync writes lastSyncAt). Older
 * histories ran with a `condition(…, timeout)` per wait and a mirror after every batch of commands.
 */
const HISTORY_ECONOMY_PATCH = 'connection-history-economy';
/** Marks the re-consent check (new grant staged, checked against the partitions, then promoted or revoked). */
const RECONSENT_CHECK_PATCH = 'reconsent-checks-partitions';
const quickActs = wf.proxyActivities<Activities>({
  startToCloseTimeout: '60s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 8 },
});
const revokeActs = wf.proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '2s', maximumAttempts: 3 },
});
// Webhooks: retried with backoff (10 s doubling to 30 min) for over 24 hours.
const notifyActs = wf.proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '25h',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '30m' },
});

export async function tenantConnection(rawInput: M.WorkflowArgs): Promise<ConnectionStatus> {
  const { workflowId } = wf.workflowInfo();
  const parsed = M.parseInput(rawInput, workflowId, connectionWorkflowId);
  if (!parsed.ok) throw invalidInput(parsed.message);
  const input = parsed.value;
  const maxHistoryEvents = input.__maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS;

  let s: M.MachineState = M.startingState(input, workflowId, wf.workflowInfo().firstExecutionRunId);
  const commands: M.Command[] = [];
  let executing = false;
  let draining = false;
  let authorizing = false;
  let updatesThisRun = 0;
  let refreshing: Promise<void> | null = null;
  let disconnectRequest: { revoke: boolean } | null = null;
  let publishedState: string | null = null;
  /** Patched (HISTORY_ECONOMY_PATCH): decided at the top of each loop turn, once true stays true for the run. */
  let economy = false;
  /** Economy: what is known to be in the `connections` document (null = unknown: the next batch writes it). */
  let written = null as M.ConnectionMirror | null;
  /** Economy: the armed wake-up timer (one at a time; it never fires later than the next deadline). */
  let timer = null as { at: number; scope: wf.CancellationScope } | null;

  const target = () => ({ tenantId: s.tenantId, provider: s.provider });
  /** What update admission depends on besides the machine state (Temporal mechanics of this shell). */
  const flags = (): D.ShellFlags => ({ disconnecting: disconnectRequest !== null, draining });

  function publishSearchAttributes(): void {
    if (publishedState === s.state) return;
    publishedState = s.state;
    wf.upsertSearchAttributes([
      { key: TenantIdSearchAttribute, value: s.tenantId },
      { key: SageProviderSearchAttribute, value: s.provider },
      { key: ConnectionStateSearchAttribute, value: s.state },
    ]);
  }

  /** The Temporal UI shows these on the workflow page (state, reason, consent link): kept current on every change. */
  function showDetails(): void {
    wf.setCurrentDetails(M.currentDetails(s, Date.now()));
  }

  /** The only way the state changes: the machine reduces an event; its commands queue for the main loop. */
  function apply(e: MachineEvent): void {
    const t = reduce(s, e, Date.now());
    s = t.state;
    commands.push(...t.commands);
    publishSearchAttributes();
    showDetails();
  }

  const shouldContinueAsNew = () => {
    const info = wf.workflowInfo();
    return (
      info.continueAsNewSuggested || info.historyLength > maxHistoryEvents || updatesThisRun >= MAX_UPDATES_PER_RUN
    );
  };

  // --- refresh: one in flight, shared by every caller -------------------------------------------------------------
  async function doRefresh(): Promise<void> {
    const from = s.token?.version;
    if (from === undefined) return;
    try {
      const r = await refreshActs.refreshAccessToken({ workflowId, provider: s.provider, fromVersion: from });
      apply({ type: 'refreshSucceeded', token: r.token, calledSage: r.calledSage });
      if (r.mirrored === true) written = M.tokenTimesWritten(written, s, r.token.version);
    } catch (err) {
      const failure = failureInfo(err);
      const { definitive, reason } = D.classifyRefreshFailure(failure);
      wf.log.warn('token refresh failed', { definitive, reason, message: failure.message });
      apply({ type: 'refreshFailed', failure });
    }
  }
  function refreshOnce(): Promise<void> {
    refreshing ??= doRefresh().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  // --- delivery of notifications in the background (carried across continue-as-new until settled) -----------------
  function startDelivery(event: M.NotificationEvent): void {
    notifyActs
      .deliverNotification({ event, ...(s.settings.notifyWebhookUrl ? { url: s.settings.notifyWebhookUrl } : {}) })
      .then(
        () => apply({ type: 'notificationSettled', eventId: event.id }),
        (err) => {
          wf.log.error('webhook notification given up after retries', {
            eventId: event.id,
            message: failureInfo(err).message,
          });
          apply({ type: 'notificationSettled', eventId: event.id });
        },
      );
  }

  // --- commands -----------------------------------------------------------------------------------------------------
  async function runCommand(c: M.Command): Promise<void> {
    switch (c.type) {
      case 'issueConsent': {
        const consent = await quickActs.mintConsent({
          workflowId,
          provider: s.provider,
          country: s.country,
          ttlMs: c.ttlMs,
        });
        apply({ type: 'consentIssued', consent });
        return;
      }
      case 'ensureSchedule':
        await quickActs.ensureSyncSchedule({
          ...target(),
          intervalMinutes: s.settings.intervalMinutes,
          paused: c.paused,
        });
        return;
      case 'pauseSchedule':
        await quickActs.pauseSyncSchedule({ ...target(), reason: c.reason });
        return;
      case 'triggerSync':
        await quickActs.triggerSync({ ...target(), mode: c.mode });
        return;
      case 'notify': {
        apply({ type: 'notificationQueued', eventType: c.eventType });
        startDelivery(s.pendingNotifications.at(-1)!); // the event just queued is the newest
        return;
      }
      case 'mirror':
        return; // coalesced: one mirror after each batch
    }
  }

  async function runCommands(): Promise<void> {
    if (executing) return;
    executing = true;
    try {
      while (commands.length > 0) {
        const batch = commands.splice(0);
        for (const c of batch) {
          try {
            await runCommand(c);
          } catch (err) {
            // Side effects are retried by their activity policy; one that still fails is visible, not fatal.
            const { message } = failureInfo(err);
            apply({ type: 'commandFailed', command: c.type, message });
            wf.log.error('connection command failed', { command: c.type, message });
          }
        }
        // Mirror after every batch that changed anything visible (also covers consent URLs and schedule errors).
        // Economy: only when the document would change (a failed write stays unknown, so the next batch retries).
        if (economy && !M.mirrorNeeded(written, s)) continue;
        try {
          const m = M.toMirror(s);
          await quickActs.mirrorConnection(m);
          if (economy) written = m;
        } catch (err) {
          wf.log.error('mirroring the connection failed', { message: failureInfo(err).message });
        }
      }
    } finally {
      executing = false;
    }
  }
  const commandsSettled = () => commands.length === 0 && !executing;

  // --- handlers -----------------------------------------------------------------------------------------------------
  wf.setHandler(statusQuery, () => M.toStatus(s, Date.now()));
  wf.setHandler(syncPlanQuery, () => M.toSyncPlan(s));

  wf.setHandler(
    getAccessTokenUpdate,
    async (req) => {
      updatesThisRun++;
      for (let refreshed = false; ; refreshed = true) {
        const a = D.answerTokenRequest(s, Date.now(), req, refreshed);
        if (a.kind === 'lease') return a.lease;
        if (a.kind === 'reject') throw reauthorizationRequired(workflowId, a.reason);
        if (a.kind === 'unavailable') throw tokenUnavailable(a.message);
        await refreshOnce();
      }
    },
    {
      validator: (req) => {
        const r = GetAccessTokenInput.safeParse(req);
        if (!r.success) throw invalidInput(describeZodError(r.error));
        const refusal = D.admitTokenRequest(s, flags());
        if (refusal) throw refusalFailure(workflowId, refusal);
      },
    },
  );

  wf.setHandler(
    completeAuthorizationUpdate,
    async (req) => {
      updatesThisRun++;
      apply({ type: 'consentConsumed', state: req.state }); // single-use, whatever happens next
      authorizing = true;
      try {
        // Re-consent of a connection with partitions: the new tokens are staged beside the current ones, tested with
        // their own access token and only then promoted, so a grant that reaches none of the partitions never
        // replaces the current one (and is revoked at Sage). Older histories ran without the check.
        const check = M.needsReconsentCheck(s) && wf.patched(RECONSENT_CHECK_PATCH);
        let exchanged: Awaited<ReturnType<typeof exchangeActs.exchangeAuthorizationCode>>;
        try {
          exchanged = await exchangeActs.exchangeAuthorizationCode({
            workflowId,
            tenantId: s.tenantId,
            provider: s.provider,
            code: req.code,
            ...(check ? { stage: true } : {}),
          });
        } catch (err) {
          if (D.supersededByDisconnect(s, flags())) return M.toStatus(s, Date.now());
          apply({ type: 'codeExchangeFailed', failure: failureInfo(err) });
          await wf.condition(() => commandsSettled() || disconnectRequest !== null);
          return M.toStatus(s, Date.now());
        }
        const staged = exchanged.staged === true;
        const testArgs = D.connectionTestArgs(s, workflowId);
        const test = await quickActs.testConnection(staged ? { ...testArgs, candidate: true } : testArgs);
        // A disconnect that arrived meanwhile wins: its cleanup deletes the tokens just stored.
        if (D.supersededByDisconnect(s, flags())) return M.toStatus(s, Date.now());
        let token: M.TokenInfo = exchanged;
        let reconsent: Extract<M.ReconsentVerdict, { accept: true }> | undefined;
        if (staged) {
          const verdict = M.reconsentVerdict(s, test);
          if (!verdict.accept) {
            try {
              await revokeActs.discardConsentCandidate({
                workflowId,
                provider: s.provider,
                exchangeId: exchanged.exchangeId,
              });
            } catch (err) {
              // Still refused: the current grant is untouched; the staged one stays unused (the next consent replaces it).
              wf.log.error('revoking a refused re-consent failed', { message: failureInfo(err).message });
            }
            apply({ type: 'reconsentRefused', test, verdict });
            await wf.condition(() => commandsSettled() || disconnectRequest !== null);
            throw reconsentRefused(M.reconsentRefusalMessage(verdict, s.lastReconsent?.userChanged ?? false), {
              reason: verdict.reason,
              unreachablePartitions: verdict.unreachable,
            });
          }
          token = await quickActs.promoteConsentCandidate({ workflowId, exchangeId: exchanged.exchangeId });
          reconsent = verdict;
        }
        apply({
          type: 'consentCompleted',
          token,
          country: req.country ?? null,
          test,
          ...(reconsent ? { reconsent } : {}),
        });
        // Answer once the schedule exists and the mirror is written, so callers observe a settled connection.
        await wf.condition(() => commandsSettled() || disconnectRequest !== null);
        return M.toStatus(s, Date.now());
      } finally {
        authorizing = false;
      }
    },
    {
      validator: (req) => {
        const r = CompleteAuthorizationInput.safeParse(req);
        if (!r.success) throw invalidInput(describeZodError(r.error));
        const refusal = D.admitConsentCompletion(s, req.state, Date.now(), { ...flags(), authorizing });
        if (refusal) throw refusalFailure(workflowId, refusal);
      },
    },
  );

  wf.setHandler(
    beginAuthorizationUpdate,
    async (req) => {
      updatesThisRun++;
      const consent = await quickActs.mintConsent({
        workflowId,
        provider: s.provider,
        country: D.consentCountry(s, req.country),
        ttlMs: M.LINK_CONSENT_TTL_MS,
      });
      apply({ type: 'consentIssued', consent });
      return { authorizationUrl: consent.url, expiresAt: new Date(consent.expiresAt).toISOString() };
    },
    {
      validator: (_req) => {
        const refusal = D.admitConsentLink(s, flags());
        if (refusal) throw refusalFailure(workflowId, refusal);
      },
    },
  );

  wf.setHandler(syncNowSignal, (req) => {
    const r = SyncNowInput.safeParse(req ?? {});
    if (!r.success) return wf.log.warn('ignoring invalid syncNow', { error: describeZodError(r.error) });
    apply({ type: 'syncRequested', ...(r.data.mode ? { mode: r.data.mode } : {}) });
  });
  wf.setHandler(syncReportSignal, (req) => {
    // A signal is input like any other: validated and bounded (unknown partitions are not added to carried state).
    const r = SyncReportInput.safeParse(req);
    if (!r.success) return wf.log.warn('ignoring invalid syncReport', { error: describeZodError(r.error) });
    const { partitionId, summary, fullSyncRequestId } = r.data;
    apply({ type: 'syncReported', partitionId, summary, ...(fullSyncRequestId ? { fullSyncRequestId } : {}) });
    written = M.syncTimeWritten(written, s, r.data.partitionId, r.data.summary);
  });
  wf.setHandler(authorizationDeniedSignal, (req) => {
    if (!req || typeof req.state !== 'string' || typeof req.error !== 'string') return;
    apply({ type: 'consentDenied', ...req });
  });
  wf.setHandler(disconnectSignal, (req) => {
    const r = DisconnectInput.safeParse(req ?? {});
    disconnectRequest = D.disconnectRequested(r.success, r.success ? r.data.revoke : undefined);
  });

  // --- main loop ------------------------------------------------------------------------------------------------------
  async function onWake(action: M.WakeAction): Promise<void> {
    const next = D.wakeAction(action);
    if (!next.refresh) {
      commands.push(...next.commands);
      return;
    }
    // Keep-alive: refresh so the refresh token does not lapse, then re-check what the consent reaches.
    const before = s.token?.version;
    await refreshOnce();
    if (D.keepAliveTestDue(s, before)) {
      const test = await quickActs.testConnection(D.connectionTestArgs(s, workflowId));
      apply({ type: 'connectionTested', test });
    }
  }

  async function disconnect(req: { revoke: boolean }): Promise<ConnectionStatus> {
    cancelTimer();
    commands.splice(0); // whatever was pending (mirror, schedule) is superseded by the cleanup below
    apply({ type: 'disconnected' });
    await wf.condition(wf.allHandlersFinished);
    let revokeError: string | null = null;
    if (req.revoke) {
      try {
        await revokeActs.revokeTokens({ workflowId, provider: s.provider });
      } catch (err) {
        revokeError = failureInfo(err).message;
      }
    }
    await quickActs.deleteTokens({ workflowId });
    await quickActs.deleteSyncSchedule(target());
    apply({ type: 'cleanupFinished', revokeError });
    await quickActs.mirrorConnection(M.toMirror(s));
    return M.toStatus(s, Date.now());
  }

  function cancelTimer(): void {
    timer?.scope.cancel();
    timer = null;
  }
  function armTimer(at: number, now: number): void {
    const scope = new wf.CancellationScope();
    const t = { at, scope };
    timer = t;
    scope
      .run(() => wf.sleep(Math.max(1, at - now)))
      .then(
        () => {
          if (timer === t) timer = null; // fired: the loop looks at what is due
        },
        () => {}, // cancelled (re-armed earlier, or disconnect)
      );
  }

  publishSearchAttributes();
  showDetails();
  for (const e of s.pendingNotifications) startDelivery(e);

  for (;;) {
    economy ||= wf.patched(HISTORY_ECONOMY_PATCH);
    await runCommands();
    if (disconnectRequest) return disconnect(disconnectRequest);
    if (shouldContinueAsNew()) {
      draining = true;
      while (!(wf.allHandlersFinished() && commands.length === 0)) {
        await wf.condition(() => wf.allHandlersFinished() || commands.length > 0);
        await runCommands();
      }
      if (disconnectRequest) return disconnect(disconnectRequest);
      return wf.continueAsNew<typeof tenantConnection>({ ...rawInput, __carried: s });
    }
    const now = Date.now();
    const wake = M.nextWake(s);
    if (wake && wake.at <= now) {
      await onWake(wake.action);
      continue;
    }
    showDetails(); // consent links expire and are renewed: show the current one before waiting
    if (economy) {
      // One timer, kept across wake-ups by messages (a signal or an update no longer cancels and re-arms it).
      const plan = M.planTimer(timer?.at ?? null, wake?.at ?? null);
      if (plan.kind === 'cancel' || plan.kind === 'rearm') cancelTimer();
      if (plan.kind === 'arm' || plan.kind === 'rearm') armTimer(plan.at, now);
      const armed = timer;
      const armedAt = armed?.at ?? Infinity;
      await wf.condition(
        () =>
          commands.length > 0 ||
          disconnectRequest !== null ||
          shouldContinueAsNew() ||
          timer !== armed ||
          (M.nextWake(s)?.at ?? Infinity) < armedAt,
      );
      continue;
    }
    const armedAt = wake?.at ?? Infinity;
    const woken = () =>
      commands.length > 0 ||
      disconnectRequest !== null ||
      shouldContinueAsNew() ||
      (M.nextWake(s)?.at ?? Infinity) < armedAt;
    if (wake) await wf.condition(woken, wake.at - now);
    else await wf.condition(woken);
  }
}
