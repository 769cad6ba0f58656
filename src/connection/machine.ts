/**
 * The decision logic of a tenant connection, as pure functions: state + event → state + commands. No Temporal calls,
 * no I/O, no clocks (time comes in as `now`, epoch ms), so every rule here is unit-tested directly
 * (test/unit/token-machine.test.ts). The workflow (`src/workflows/tenant-connection/workflow.ts`) is a thin shell that
 * feeds events in and carries the commands out as activities, timers and search-attribute upserts. Lives outside
 * src/workflows so activities, tokens, sync, lib and web import it without reaching into workflow code; sandbox-safe
 * (zod, messages and the import-free Sage 200 editions only): the workflow bundle imports it.
 *
 * The state never holds a secret: tokens live encrypted in the token store; here we keep versions and expiry times.
 */
import { z } from 'zod';
import {
  describeZodError,
  PartitionSyncSummarySchema,
  TenantConnectionInput,
  type AccessTokenLease,
  type ConnectionState,
  type ConnectionStatus,
  type GetAccessTokenInput,
  type Partition,
  type PartitionSyncSummary,
  type Provider,
  type ReconsentRecord,
  type SyncPlanAnswer,
} from '../messages.js';
import { SAGE200_DEFAULT_EDITION, SAGE200_EDITIONS, type Sage200Edition } from '../providers/sage200/editions.js';
import type { Reason } from './reasons.js';

// ---------------------------------------------------------------------------------------------------------------------
// Tunables (why each value is what it is)

/** Clock-skew floor: never hand out a token with less than this left, and never refresh later than this before expiry. */
export const SKEW_SECONDS = 30;
/** Upper bound of the refresh margin: long-lived tokens (Sage 200, hours) are refreshed 15 minutes before expiry. */
export const MAX_MARGIN_SECONDS = 15 * 60;
/** Share of an access token's life used as margin: 25% of Sage Accounting's 300 s = 75 s, so not every call refreshes. */
export const MARGIN_SHARE = 0.25;
/** Keep-alive: an idle connection refreshes when this share of the refresh token's life remains (31 d → ~6 d ahead). */
export const KEEP_ALIVE_SHARE = 0.2;
/** A consent URL in `status` lives a day (renewed by one timer a day); `/connect` mints its own short-lived one. */
export const STATUS_CONSENT_TTL_MS = 24 * 3600_000;
export const LINK_CONSENT_TTL_MS = 30 * 60_000;
/** Outstanding single-use states kept per connection (older ones are dropped). */
export const MAX_OUTSTANDING_CONSENTS = 5;
/** Background retry of a failing keep-alive refresh: 30 s doubling up to 30 min. */
export const RETRY_BASE_MS = 30_000;
export const RETRY_MAX_MS = 30 * 60_000;
/** Consecutive transient failures after which an expiring refresh token is flagged `refresh_token_expiring`. */
export const WARN_AFTER_FAILURES = 3;

// Machine reason codes (`reason` below): the one typed catalogue is `reasons.ts` beside this file.

// ---------------------------------------------------------------------------------------------------------------------
// State

export interface TokenInfo {
  version: number;
  accessTokenExpiresAt: number;
  accessTokenLifetimeSec: number;
  refreshTokenExpiresAt: number | null;
  refreshTokenLifetimeSec: number | null;
  obtainedAt: number;
}

/** An outstanding single-use OAuth `state`: its random id, expiry and the consent URL carrying it. */
export interface Consent {
  nonce: string;
  expiresAt: number;
  url: string;
}

export interface ConnectionTest {
  available: boolean;
  reason: Reason | null;
  checkedAt: number;
  leadBusinessId: string | null;
}

export interface NotificationEvent {
  id: string;
  type: 'connection.reauthorization_required' | 'connection.recovered';
  occurredAt: string;
  tenantId: string;
  provider: Provider;
  workflowId: string;
  state: ConnectionState;
  reason: Reason | null;
  authorizationUrl: string | null;
}

export interface Settings {
  intervalMinutes: number;
  businessIds?: string[];
  sage200?: { edition: Sage200Edition; sites?: { siteId?: string; companyId?: string }[] };
  notifyWebhookUrl?: string;
}

export interface MachineState {
  workflowId: string;
  tenantId: string;
  provider: Provider;
  settings: Settings;
  state: ConnectionState;
  reason: Reason | null;
  lastError: string | null;
  consents: Consent[];
  country: string | null;
  token: TokenInfo | null;
  lastRefreshAt: number | null;
  refreshCount: number;
  refreshFailures: number;
  nextRefreshRetryAt: number | null;
  partitions: Partition[];
  connection: ConnectionTest | null;
  lastSync: Record<string, PartitionSyncSummary>;
  lastSyncAt: string | null;
  schedule: 'none' | 'active' | 'paused';
  notifySeq: number;
  /**
   * Prefix of notification event ids: `{workflowId}:{firstExecutionRunId}`. The run id of the chain's first execution is
   * deterministic (it is in history), stays the same across continue-as-new and differs for a closed-then-restarted
   * workflow with the same id, so `{prefix}:{seq}` is never reused (contract §5: ids are never reused across reconnects).
   */
  eventIdPrefix: string;
  pendingNotifications: NotificationEvent[];
  /** The Sage user who granted the current consent, when Sage tells us (Sage Accounting: `GET /user`). */
  sageUserId: string | null;
  /** The last re-consent of a connection that already had partitions: accepted or refused, same user or not. */
  lastReconsent: ReconsentRecord | null;
  /**
   * A `syncNow { mode: "full" }` not yet honoured: the sync plans every partition full while it is set (`syncPlan`
   * query) and it clears once every partition reported a succeeded full run planned with this `id`. `done`: the
   * partitions that did. A newer request replaces it (so a run already in flight cannot clear the newer one).
   */
  fullSyncRequest: PendingFullSync | null;
  /** Full-sync requests so far in this chain: makes each request id unique. */
  fullSyncSeq: number;
}

export interface PendingFullSync {
  id: string;
  requestedAt: string;
  done: string[];
}

export type Command =
  | { type: 'issueConsent'; ttlMs: number }
  | { type: 'mirror' }
  | { type: 'ensureSchedule'; paused: boolean }
  | { type: 'pauseSchedule'; reason: Reason }
  | { type: 'notify'; eventType: NotificationEvent['type'] }
  | { type: 'triggerSync'; mode: 'incremental' | 'full' };

export interface Transition {
  state: MachineState;
  commands: Command[];
}

// ---------------------------------------------------------------------------------------------------------------------
// Input

// Carried state is input too: a continued run (or anyone who starts the workflow by hand) hands it in, so it is
// validated like any input, with bounds, instead of being trusted. Fields added later get defaults, so a state carried
// by an older run still parses.
const MAX_ID = 256;
const MAX_TEXT = 2_000;
export const MAX_PARTITIONS = 1_000;
export const MAX_PENDING_NOTIFICATIONS = 100;
const Epoch = z.number().finite();
const IdText = z.string().max(MAX_ID);
// Free text we produce ourselves (error messages, Sage's business names) is cut, never refused: a carried state must
// always parse in the next run, or the connection would fail on its own continue-as-new.
const ShortText = z.string().transform((t) => (t.length > MAX_TEXT ? `${t.slice(0, MAX_TEXT)}…` : t));
const PartitionSchema = z
  .object({ id: z.string().min(1).max(MAX_ID), name: ShortText, siteId: IdText.optional() })
  .strict();
const TokenInfoSchema = z
  .object({
    version: z.number().int().min(0),
    accessTokenExpiresAt: Epoch,
    accessTokenLifetimeSec: z.number().positive(),
    refreshTokenExpiresAt: Epoch.nullable(),
    refreshTokenLifetimeSec: z.number().positive().nullable(),
    obtainedAt: Epoch,
  })
  .strict();
const States = z.enum(['awaiting_authorization', 'connected', 'reauthorization_required', 'disconnected']);
const NotificationEventSchema = z
  .object({
    id: IdText,
    type: z.enum(['connection.reauthorization_required', 'connection.recovered']),
    occurredAt: z.string().max(64),
    tenantId: IdText,
    provider: z.enum(['sage-accounting', 'sage-200']),
    workflowId: IdText,
    state: States,
    reason: IdText.nullable(),
    authorizationUrl: z.string().max(8_192).nullable(),
  })
  .strict();
export const ReconsentRecordSchema = z
  .object({
    at: z.string().max(64),
    outcome: z.enum(['accepted', 'refused']),
    reason: IdText.nullable(),
    previousSageUserId: IdText.nullable(),
    sageUserId: IdText.nullable(),
    userChanged: z.boolean(),
    unreachablePartitions: z.array(IdText).max(MAX_PARTITIONS),
  })
  .strict();
export const MachineStateSchema = z
  .object({
    workflowId: IdText,
    tenantId: IdText,
    provider: z.enum(['sage-accounting', 'sage-200']),
    settings: z
      .object({
        intervalMinutes: z.number().int().min(1),
        businessIds: z.array(IdText).max(MAX_PARTITIONS).optional(),
        sage200: z
          .object({
            edition: z.enum(SAGE200_EDITIONS),
            sites: z
              .array(z.object({ siteId: IdText.optional(), companyId: IdText.optional() }).strict())
              .max(MAX_PARTITIONS)
              .optional(),
          })
          .strict()
          .optional(),
        notifyWebhookUrl: z.string().max(2_048).optional(),
      })
      .strict(),
    state: States,
    reason: IdText.nullable(),
    lastError: ShortText.nullable(),
    consents: z
      .array(z.object({ nonce: IdText, expiresAt: Epoch, url: z.string().max(8_192) }).strict())
      .max(MAX_OUTSTANDING_CONSENTS),
    country: z.string().max(16).nullable(),
    token: TokenInfoSchema.nullable(),
    lastRefreshAt: Epoch.nullable(),
    refreshCount: z.number().int().min(0),
    refreshFailures: z.number().int().min(0),
    nextRefreshRetryAt: Epoch.nullable(),
    partitions: z.array(PartitionSchema).max(MAX_PARTITIONS),
    connection: z
      .object({
        available: z.boolean(),
        reason: IdText.nullable(),
        checkedAt: Epoch,
        leadBusinessId: IdText.nullable(),
      })
      .strict()
      .nullable(),
    lastSync: z
      .record(z.string().min(1).max(MAX_ID), PartitionSyncSummarySchema)
      .refine((r) => Object.keys(r).length <= MAX_PARTITIONS, `at most ${MAX_PARTITIONS} partitions`),
    lastSyncAt: z.string().max(64).nullable(),
    schedule: z.enum(['none', 'active', 'paused']),
    notifySeq: z.number().int().min(0),
    eventIdPrefix: IdText.optional(),
    pendingNotifications: z.array(NotificationEventSchema).max(MAX_PENDING_NOTIFICATIONS),
    sageUserId: IdText.nullable().default(null),
    lastReconsent: ReconsentRecordSchema.nullable().default(null),
    fullSyncRequest: z
      .object({ id: IdText, requestedAt: z.string().max(64), done: z.array(IdText).max(MAX_PARTITIONS) })
      .strict()
      .nullable()
      .default(null),
    fullSyncSeq: z.number().int().min(0).default(0),
  })
  .strict();

/** Internal fields a continued run (or a test) passes beside the public input. */
export const WorkflowArgs = TenantConnectionInput.extend({
  /** State carried across continue-as-new: validated and bounded like the rest of the input. */
  __carried: MachineStateSchema.optional(),
  /** Test knob: continue-as-new once history is longer than this. */
  __maxHistoryEvents: z.number().int().min(50).optional(),
});
export type WorkflowArgs = z.input<typeof WorkflowArgs>;

export type ParsedInput = { ok: true; value: z.output<typeof WorkflowArgs> } | { ok: false; message: string };

export function parseInput(
  raw: unknown,
  workflowId: string,
  expectedId: (p: Provider, t: string) => string,
): ParsedInput {
  const parsed = WorkflowArgs.safeParse(raw ?? {});
  if (!parsed.success)
    return { ok: false, message: `invalid tenantConnection input: ${describeZodError(parsed.error)}` };
  const want = expectedId(parsed.data.provider, parsed.data.tenantId);
  if (workflowId !== want) {
    return {
      ok: false,
      message: `workflowId: this connection must run under the workflow id "${want}" (started as "${workflowId}")`,
    };
  }
  const c = parsed.data.__carried;
  if (
    c &&
    (c.workflowId !== workflowId || c.tenantId !== parsed.data.tenantId || c.provider !== parsed.data.provider)
  ) {
    return { ok: false, message: 'invalid tenantConnection input: __carried: belongs to another connection' };
  }
  return { ok: true, value: parsed.data };
}

/** The state to start from: the carried one (validated by `parseInput`) or a fresh one. */
export function startingState(
  input: z.output<typeof WorkflowArgs>,
  workflowId: string,
  firstExecutionRunId: string,
): MachineState {
  const eventIdPrefix = `${workflowId}:${firstExecutionRunId}`;
  if (!input.__carried) return initialState(input, workflowId, eventIdPrefix);
  // A state carried by a run older than eventIdPrefix: same chain, so the same prefix (its seq keeps counting).
  const carried = input.__carried;
  return {
    ...carried,
    eventIdPrefix: carried.eventIdPrefix ?? eventIdPrefix,
    // The schema reads reason codes as plain strings, so states carried by older runs still parse; they are the codes
    // this machine wrote (typed `Reason` here, values untouched).
    reason: carried.reason as Reason | null,
    connection: carried.connection as ConnectionTest | null,
    pendingNotifications: carried.pendingNotifications as NotificationEvent[],
    lastReconsent: carried.lastReconsent as ReconsentRecord | null,
  };
}

export function initialState(
  input: z.output<typeof WorkflowArgs>,
  workflowId: string,
  eventIdPrefix = workflowId,
): MachineState {
  return {
    workflowId,
    tenantId: input.tenantId,
    provider: input.provider,
    settings: {
      intervalMinutes: input.sync.intervalMinutes,
      ...(input.businessIds ? { businessIds: input.businessIds } : {}),
      ...(input.sage200 ? { sage200: input.sage200 } : {}),
      ...(input.notifyWebhookUrl ? { notifyWebhookUrl: input.notifyWebhookUrl } : {}),
    },
    state: 'awaiting_authorization',
    reason: 'awaiting_consent',
    lastError: null,
    consents: [],
    country: null,
    token: null,
    lastRefreshAt: null,
    refreshCount: 0,
    refreshFailures: 0,
    nextRefreshRetryAt: null,
    partitions: [],
    connection: null,
    lastSync: {},
    lastSyncAt: null,
    schedule: 'none',
    notifySeq: 0,
    eventIdPrefix,
    pendingNotifications: [],
    sageUserId: null,
    lastReconsent: null,
    fullSyncRequest: null,
    fullSyncSeq: 0,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Token margins

/**
 * Seconds before access-token expiry at which we refresh: derived from the token's own life, never fixed. The skew
 * floor applies only while it fits in `MARGIN_SHARE` of the life: a margin bigger than that share would make a short
 * token (15 s in compressed tests) stale for most of its life, so callers spread over a few seconds would each see it
 * "due" and a storm would cause a second refresh (and a second version). 300 s → 75 s, 60 s → 15 s, 15 s → 3.75 s,
 * 8 h → 15 min.
 */
export function refreshMarginSeconds(lifetimeSec: number): number {
  // For Sage's real lifetimes (300 s, 8 h) the share is above the skew floor anyway (75 s, capped to 15 min); only a
  // token shorter than 120 s gets a margin below SKEW_SECONDS, and then the share is what keeps it usable.
  return Math.min(MAX_MARGIN_SECONDS, Math.max(0, lifetimeSec) * MARGIN_SHARE);
}

/** When an idle connection must refresh so its refresh token does not lapse (null: no refresh-token expiry known). */
export function keepAliveAt(t: TokenInfo): number | null {
  if (t.refreshTokenExpiresAt === null) return null;
  const life = (t.refreshTokenLifetimeSec ?? (t.refreshTokenExpiresAt - t.obtainedAt) / 1000) * 1000;
  return t.refreshTokenExpiresAt - Math.max(10_000, life * KEEP_ALIVE_SHARE);
}

export type AccessDecision =
  | { kind: 'lease'; lease: AccessTokenLease }
  | { kind: 'refresh' }
  | { kind: 'reject'; reason: Reason | ConnectionState };

const leaseOf = (t: TokenInfo): AccessTokenLease => ({
  tokenVersion: t.version,
  expiresAt: new Date(t.accessTokenExpiresAt).toISOString(),
});

/**
 * getAccessToken: hand out the current version, or say a refresh is needed. `rejectedTokenVersion` forces a refresh
 * only while that version is still the current one (a caller holding an older version just gets the newer one).
 */
export function decideAccess(s: MachineState, now: number, req: GetAccessTokenInput): AccessDecision {
  if (s.state !== 'connected') return { kind: 'reject', reason: s.reason ?? s.state };
  const t = s.token;
  if (!t) return { kind: 'reject', reason: 'tokens_missing' };
  if (req.rejectedTokenVersion !== undefined && req.rejectedTokenVersion === t.version) return { kind: 'refresh' };
  const remaining = (t.accessTokenExpiresAt - now) / 1000;
  // A caller may ask for more validity than the margin, but never more than a fresh token could give.
  const wanted = Math.min(req.minValidSeconds ?? 0, t.accessTokenLifetimeSec - SKEW_SECONDS);
  const need = Math.max(refreshMarginSeconds(t.accessTokenLifetimeSec), wanted);
  return remaining > need ? { kind: 'lease', lease: leaseOf(t) } : { kind: 'refresh' };
}

/** After a refresh attempt failed transiently: the current token is still fine if it outlives the skew floor. */
export function fallbackLease(s: MachineState, now: number): AccessTokenLease | null {
  const t = s.token;
  if (s.state !== 'connected' || !t) return null;
  return t.accessTokenExpiresAt - now > SKEW_SECONDS * 1000 ? leaseOf(t) : null;
}

// ---------------------------------------------------------------------------------------------------------------------
// Events

const withCommands = (state: MachineState, ...commands: Command[]): Transition => ({ state, commands });

/** A fresh consent URL was minted. Newest first; expired and surplus states are dropped. */
export function consentIssued(s: MachineState, c: Consent, now: number): MachineState {
  const consents = [c, ...s.consents.filter((x) => x.expiresAt > now && x.nonce !== c.nonce)].slice(
    0,
    MAX_OUTSTANDING_CONSENTS,
  );
  return { ...s, consents };
}

/** The state string is `<b64url workflow id>.<nonce>.<expiry>.<mac>`; the workflow needs only the nonce. */
export function nonceOfState(state: string): string | null {
  const parts = state.split('.');
  return parts.length === 4 && parts[1] ? parts[1] : null;
}

/** Synchronous check for the completeAuthorization validator: null = acceptable, else why not. */
export function checkConsentState(s: MachineState, state: string, now: number): string | null {
  if (s.state === 'disconnected') return 'the connection is disconnected';
  const nonce = nonceOfState(state);
  const c = nonce ? s.consents.find((x) => x.nonce === nonce) : undefined;
  if (!c) return 'unknown or already used state';
  if (c.expiresAt <= now) return 'expired state';
  return null;
}

/** A state is single-use: consumed before the code exchange starts, whatever its outcome. */
export function consentConsumed(s: MachineState, state: string): MachineState {
  const nonce = nonceOfState(state);
  return { ...s, consents: s.consents.filter((x) => x.nonce !== nonce) };
}

function partitionsFrom(s: MachineState, available: Partition[]): { partitions: Partition[]; missing: string[] } {
  const wantedBusinesses = s.settings.businessIds;
  const wantedSites = s.settings.sage200?.sites;
  if (s.provider === 'sage-accounting' && wantedBusinesses?.length) {
    const partitions = available.filter((p) => wantedBusinesses.includes(p.id));
    return { partitions, missing: wantedBusinesses.filter((id) => !partitions.some((p) => p.id === id)) };
  }
  if (s.provider === 'sage-200' && wantedSites?.length) {
    const match = (p: Partition, w: { siteId?: string; companyId?: string }) =>
      (w.siteId === undefined || p.siteId === w.siteId) && (w.companyId === undefined || p.id === w.companyId);
    const partitions = available.filter((p) => wantedSites.some((w) => match(p, w)));
    return {
      partitions,
      missing: wantedSites
        .filter((w) => !available.some((p) => match(p, w)))
        .map((w) => w.companyId ?? w.siteId ?? '?'),
    };
  }
  return { partitions: available, missing: [] };
}

export interface ConnectionTestResult {
  ok: boolean;
  /** Every business/site the user can reach (empty when `ok` is false). */
  available: Partition[];
  leadBusinessId: string | null;
  error?: string;
  /** The Sage user the tested grant belongs to, when Sage names it (Sage Accounting `GET /user`); else absent/null. */
  sageUserId?: string | null;
}

/** Records a connection test: partitions (selection ∩ reachable, else all), availability, lead-business drift. */
export function connectionTested(s: MachineState, r: ConnectionTestResult, now: number): Transition {
  if (!r.ok) {
    const connection: ConnectionTest = {
      available: s.partitions.length > 0,
      reason: 'connection_test_failed',
      checkedAt: now,
      leadBusinessId: s.connection?.leadBusinessId ?? null,
    };
    return withCommands({ ...s, connection, lastError: r.error ?? s.lastError }, { type: 'mirror' });
  }
  const { partitions, missing } = partitionsFrom(s, r.available);
  const previousLead = s.connection?.leadBusinessId ?? null;
  const leadChanged =
    s.provider === 'sage-accounting' &&
    previousLead !== null &&
    r.leadBusinessId !== null &&
    previousLead !== r.leadBusinessId;
  const reason =
    partitions.length === 0
      ? 'no_partitions'
      : missing.length
        ? 'partition_not_found'
        : leadChanged
          ? 'lead_business_changed'
          : null;
  const connection: ConnectionTest = {
    available: partitions.length > 0,
    reason,
    checkedAt: now,
    leadBusinessId: r.leadBusinessId,
  };
  const lastError =
    reason === 'partition_not_found'
      ? `not reachable with this consent: ${missing.join(', ')}`
      : leadChanged
        ? `lead business changed from ${previousLead} to ${r.leadBusinessId}`
        : s.lastError;
  // A connection made before the Sage user was recorded learns it on its next check (the grant is the same one).
  const sageUserId = s.sageUserId ?? r.sageUserId ?? null;
  const next: MachineState = {
    ...s,
    partitions,
    connection,
    lastError,
    sageUserId,
    reason: s.state === 'connected' ? (reason ?? s.reason) : s.reason,
  };
  return withCommands(next, { type: 'mirror' });
}

export function applyTokenMeta(s: MachineState, t: TokenInfo): MachineState {
  // Versions only grow: an answer about an older version (a late activity result) changes nothing.
  if (s.token && t.version <= s.token.version) return s;
  // Only the TokenInfo fields: activity answers carry more (the consent's `exchangeId`), and carried state is validated
  // strictly, so an extra key here made the next run after continue-as-new fail as InvalidInput.
  const {
    version,
    accessTokenExpiresAt,
    accessTokenLifetimeSec,
    refreshTokenExpiresAt,
    refreshTokenLifetimeSec,
    obtainedAt,
  } = t;
  return {
    ...s,
    token: {
      version,
      accessTokenExpiresAt,
      accessTokenLifetimeSec,
      refreshTokenExpiresAt,
      refreshTokenLifetimeSec,
      obtainedAt,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Re-consent safety: a new grant replaces the current one only once we know it reaches the connection's partitions.

export type ReconsentVerdict =
  | { accept: true; unreachable: string[] }
  | { accept: false; reason: 'reconsent_no_partitions' | 'reconsent_unverified'; unreachable: string[] };

/** Whether the consent just exchanged must be checked against the partitions before it replaces the current grant. */
export const needsReconsentCheck = (s: MachineState): boolean => s.partitions.length > 0;

/** Does the new grant (tested with its own access token) reach the connection's partitions? None → refuse. */
export function reconsentVerdict(s: MachineState, test: ConnectionTestResult): ReconsentVerdict {
  const previous = s.partitions.map((p) => p.id);
  if (!test.ok) return { accept: false, reason: 'reconsent_unverified', unreachable: previous };
  const reachable = new Set(test.available.map((p) => p.id));
  const unreachable = previous.filter((id) => !reachable.has(id));
  if (unreachable.length === previous.length) return { accept: false, reason: 'reconsent_no_partitions', unreachable };
  return { accept: true, unreachable };
}

function reconsentRecord(
  s: MachineState,
  test: ConnectionTestResult,
  v: ReconsentVerdict,
  now: number,
): ReconsentRecord {
  const sageUserId = test.sageUserId ?? null;
  return {
    at: new Date(now).toISOString(),
    outcome: v.accept ? 'accepted' : 'refused',
    reason: v.accept ? (v.unreachable.length ? 'partition_not_found' : null) : v.reason,
    previousSageUserId: s.sageUserId,
    sageUserId,
    userChanged: s.sageUserId !== null && sageUserId !== null && s.sageUserId !== sageUserId,
    unreachablePartitions: v.unreachable,
  };
}

/** Human text of a refusal (the callback page and `lastError`); names the reason code. */
export function reconsentRefusalMessage(v: Extract<ReconsentVerdict, { accept: false }>, userChanged: boolean): string {
  const who = userChanged ? ' (granted by a different Sage user)' : '';
  return `re-consent refused (${v.reason})${who}: the new grant reaches none of the connection's partitions (${v.unreachable.join(', ')}); it was revoked at Sage and the connection keeps its previous grant`;
}

/**
 * A re-consent was refused (its grant already revoked at Sage): grant, tokens, partitions and state stay as they were;
 * the refusal is recorded. A connection still waiting for reauthorization gets a fresh consent URL (the state is used).
 */
export function reconsentRefused(
  s: MachineState,
  p: { test: ConnectionTestResult; verdict: Extract<ReconsentVerdict, { accept: false }>; now: number },
): Transition {
  const record = reconsentRecord(s, p.test, p.verdict, p.now);
  const next: MachineState = {
    ...s,
    lastReconsent: record,
    lastError: reconsentRefusalMessage(p.verdict, record.userChanged),
  };
  if (s.state === 'connected') return withCommands(next, { type: 'mirror' });
  return withCommands(next, { type: 'issueConsent', ttlMs: STATUS_CONSENT_TTL_MS }, { type: 'mirror' });
}

/** The code was exchanged and stored; the connection test result comes with it. Re-consent keeps partitions and sync state. */
export function consentCompleted(
  s: MachineState,
  p: {
    token: TokenInfo;
    country: string | null;
    test: ConnectionTestResult;
    now: number;
    reconsent?: Extract<ReconsentVerdict, { accept: true }>;
  },
): Transition {
  const wasReauth = s.state === 'reauthorization_required';
  let next: MachineState = {
    ...applyTokenMeta(s, p.token),
    state: 'connected',
    reason: null,
    lastError: null,
    country: p.country ?? s.country,
    refreshFailures: 0,
    nextRefreshRetryAt: null,
    // Any other outstanding consent URL is moot once connected.
    consents: [],
  };
  const tested = connectionTested(next, p.test, p.now);
  next = { ...tested.state, sageUserId: p.test.sageUserId ?? s.sageUserId };
  if (p.reconsent) {
    const record = reconsentRecord(s, p.test, p.reconsent, p.now);
    next = { ...next, lastReconsent: record };
    // Report the connection's partitions this grant does not reach (the others keep syncing); that outranks a changed
    // lead business, which stays visible in lastError.
    if (p.reconsent.unreachable.length && next.reason !== 'no_partitions') {
      const unreachable = `not reachable with this consent: ${p.reconsent.unreachable.join(', ')}`;
      const lead = next.reason === 'lead_business_changed' && next.lastError ? `; ${next.lastError}` : '';
      next = { ...next, reason: 'partition_not_found', lastError: `${unreachable}${lead}` };
    }
  }
  const commands: Command[] = [...tested.commands, { type: 'ensureSchedule', paused: false }];
  if (wasReauth) commands.push({ type: 'notify', eventType: 'connection.recovered' });
  return withCommands({ ...next, schedule: 'active' }, ...dedupe(commands));
}

/** The code exchange failed: the state stays as it was, with Sage's reason visible, and a fresh consent URL. */
export function consentFailed(s: MachineState, p: { reason: Reason; message: string }): Transition {
  if (s.state === 'connected') return withCommands({ ...s, lastError: p.message });
  return withCommands(
    { ...s, reason: p.reason, lastError: p.message },
    { type: 'issueConsent', ttlMs: STATUS_CONSENT_TTL_MS },
    { type: 'mirror' },
  );
}

export function refreshSucceeded(s: MachineState, t: TokenInfo, now: number, p: { calledSage: boolean }): Transition {
  const wasWarning = s.reason === 'refresh_token_expiring' || s.reason === 'token_refresh_failing';
  const next: MachineState = {
    ...applyTokenMeta(s, t),
    lastRefreshAt: p.calledSage ? now : s.lastRefreshAt,
    refreshCount: s.refreshCount + (p.calledSage ? 1 : 0),
    refreshFailures: 0,
    nextRefreshRetryAt: null,
    reason: wasWarning ? null : s.reason,
    lastError: wasWarning ? null : s.lastError,
  };
  // The refresh activity mirrors token times itself; only a cleared warning needs a mirror from here.
  return wasWarning ? withCommands(next, { type: 'mirror' }) : withCommands(next);
}

export interface RefreshFailure {
  /** invalid_grant / invalid_client / unauthorized_client (after the store showed no lost race). */
  definitive: boolean;
  reason: Reason;
  message: string;
}

/** Moves to reauthorization_required: fresh consent URL, schedule paused, notification, mirror. */
export function requireReauthorization(s: MachineState, reason: Reason, message: string | null): Transition {
  if (s.state === 'reauthorization_required' || s.state === 'disconnected')
    return withCommands({ ...s, lastError: message ?? s.lastError });
  const next: MachineState = {
    ...s,
    state: 'reauthorization_required',
    reason,
    lastError: message,
    refreshFailures: 0,
    nextRefreshRetryAt: null,
  };
  const commands: Command[] = [{ type: 'issueConsent', ttlMs: STATUS_CONSENT_TTL_MS }, { type: 'mirror' }];
  if (s.schedule !== 'none') commands.push({ type: 'pauseSchedule', reason });
  commands.push({ type: 'notify', eventType: 'connection.reauthorization_required' });
  return withCommands({ ...next, schedule: s.schedule === 'none' ? 'none' : 'paused' }, ...commands);
}

export function refreshFailed(s: MachineState, f: RefreshFailure, now: number): Transition {
  if (s.state !== 'connected') return withCommands(s);
  if (f.definitive) return requireReauthorization(s, f.reason, f.message);
  const t = s.token;
  if (t?.refreshTokenExpiresAt != null && now >= t.refreshTokenExpiresAt)
    return requireReauthorization(s, 'refresh_token_expired', f.message);
  const failures = s.refreshFailures + 1;
  let delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (failures - 1));
  let reason = s.reason;
  if (t?.refreshTokenExpiresAt != null) {
    const left = t.refreshTokenExpiresAt - now;
    // Keep trying well before the refresh token lapses, however short its life (tests use seconds).
    delay = Math.max(1_000, Math.min(delay, left / 4));
    const ka = keepAliveAt(t);
    const lead = ka === null ? 0 : t.refreshTokenExpiresAt - ka;
    if (ka !== null && now >= ka && (failures >= WARN_AFTER_FAILURES || left < lead / 2))
      reason = 'refresh_token_expiring';
  }
  if (reason !== 'refresh_token_expiring') reason = 'token_refresh_failing';
  const next: MachineState = {
    ...s,
    refreshFailures: failures,
    nextRefreshRetryAt: now + delay,
    lastError: f.message,
    reason,
  };
  return reason !== s.reason ? withCommands(next, { type: 'mirror' }) : withCommands(next);
}

/**
 * A sync run's per-partition summary (validated by the signal handler). Unknown partitions are ignored: bounded state.
 * `fullSyncRequestId`: the full-sync request the run was planned with; a succeeded full run of that request counts
 * towards clearing it (a run planned before the request, or with an older one, does not).
 */
export function syncReported(
  s: MachineState,
  partitionId: string,
  summary: PartitionSyncSummary,
  fullSyncRequestId?: string,
): Transition {
  if (!s.partitions.some((p) => p.id === partitionId)) return withCommands(s);
  const lastSyncAt = !s.lastSyncAt || summary.finishedAt > s.lastSyncAt ? summary.finishedAt : s.lastSyncAt;
  return withCommands(
    {
      ...s,
      lastSync: { ...s.lastSync, [partitionId]: summary },
      lastSyncAt,
      fullSyncRequest: fullSyncProgress(s, partitionId, summary, fullSyncRequestId),
    },
    { type: 'mirror' },
  );
}

function fullSyncProgress(
  s: MachineState,
  partitionId: string,
  summary: PartitionSyncSummary,
  requestId: string | undefined,
): PendingFullSync | null {
  const r = s.fullSyncRequest;
  if (!r || requestId !== r.id || summary.status !== 'succeeded' || summary.mode !== 'full') return r;
  const done = r.done.includes(partitionId) ? r.done : [...r.done, partitionId];
  return s.partitions.every((p) => done.includes(p.id)) ? null : { ...r, done };
}

/** `syncNow`: triggers the schedule; a full one is also recorded until every partition has run full (see above). */
export function syncRequested(s: MachineState, mode: 'incremental' | 'full', now: number): Transition {
  if (s.state !== 'connected') return withCommands(s);
  if (mode === 'incremental') return withCommands(s, { type: 'triggerSync', mode });
  const seq = s.fullSyncSeq + 1;
  const fullSyncRequest = {
    id: `${s.eventIdPrefix}:full-sync:${seq}`,
    requestedAt: new Date(now).toISOString(),
    done: [],
  };
  return withCommands({ ...s, fullSyncSeq: seq, fullSyncRequest }, { type: 'triggerSync', mode });
}

/** Sage redirected back with `?error=` for one of our states. */
export function consentDenied(
  s: MachineState,
  p: { state: string; error: string; description?: string },
  now: number,
): Transition {
  if (checkConsentState(s, p.state, now) !== null) return withCommands(s);
  const consumed = consentConsumed(s, p.state);
  const reason = p.error === 'access_denied' ? 'consent_denied' : 'consent_failed';
  const message = `Sage: ${p.error}${p.description ? ` (${p.description})` : ''}`;
  if (s.state === 'connected') return withCommands({ ...consumed, lastError: message });
  return withCommands(
    { ...consumed, reason, lastError: message },
    { type: 'issueConsent', ttlMs: STATUS_CONSENT_TTL_MS },
    { type: 'mirror' },
  );
}

export function notificationQueued(
  s: MachineState,
  type: NotificationEvent['type'],
  occurredAt: number,
): { state: MachineState; event: NotificationEvent } {
  const seq = s.notifySeq + 1;
  const event: NotificationEvent = {
    id: `${s.eventIdPrefix}:${seq}`,
    type,
    occurredAt: new Date(occurredAt).toISOString(),
    tenantId: s.tenantId,
    provider: s.provider,
    workflowId: s.workflowId,
    state: s.state,
    reason: s.reason,
    authorizationUrl: currentConsentUrl(s, occurredAt),
  };
  // Bounded: a webhook that stays down for weeks must not grow the carried state without end (oldest dropped).
  const pendingNotifications = [...s.pendingNotifications, event].slice(-MAX_PENDING_NOTIFICATIONS);
  return { state: { ...s, notifySeq: seq, pendingNotifications }, event };
}

export function notificationSettled(s: MachineState, eventId: string): MachineState {
  return { ...s, pendingNotifications: s.pendingNotifications.filter((e) => e.id !== eventId) };
}

export function disconnected(s: MachineState): MachineState {
  return {
    ...s,
    state: 'disconnected',
    reason: 'disconnected',
    consents: [],
    token: null,
    schedule: 'none',
    nextRefreshRetryAt: null,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Timers: one durable timer to the next deadline, never a polling loop

export type WakeAction = 'keepAliveRefresh' | 'renewConsent';

/** The next moment the workflow must wake by itself, or null (then it only waits for messages). */
export function nextWake(s: MachineState): { at: number; action: WakeAction } | null {
  if (s.state === 'connected' && s.token) {
    const t = s.token;
    const ka = keepAliveAt(t);
    if (ka === null || t.refreshTokenExpiresAt === null) return null;
    if (s.refreshFailures > 0 && s.nextRefreshRetryAt !== null)
      return { at: Math.max(ka, s.nextRefreshRetryAt), action: 'keepAliveRefresh' };
    // A refresh that did not renew the refresh token (Sage 200 without rotation: absolute lifetime) cannot be helped by
    // refreshing again; wait for the expiry itself, where the refresh answer decides, and never loop.
    if (s.lastRefreshAt !== null && s.lastRefreshAt >= ka) {
      return s.lastRefreshAt >= t.refreshTokenExpiresAt
        ? null
        : { at: t.refreshTokenExpiresAt, action: 'keepAliveRefresh' };
    }
    return { at: ka, action: 'keepAliveRefresh' };
  }
  if (s.state === 'awaiting_authorization' || s.state === 'reauthorization_required') {
    if (s.consents.length === 0) return { at: 0, action: 'renewConsent' };
    return { at: Math.max(...s.consents.map((c) => c.expiresAt)), action: 'renewConsent' };
  }
  return null;
}

export function currentConsentUrl(s: MachineState, now: number): string | null {
  if (s.state !== 'awaiting_authorization' && s.state !== 'reauthorization_required') return null;
  const live = s.consents.filter((c) => c.expiresAt > now).sort((a, b) => b.expiresAt - a.expiresAt);
  return live[0]?.url ?? null;
}

// ---------------------------------------------------------------------------------------------------------------------
// Projection

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

/** The `status` query answer: never a secret (the consent URL carries only a single-use state). */
export function toStatus(s: MachineState, now: number): ConnectionStatus {
  const wake = nextWake(s);
  return {
    tenantId: s.tenantId,
    provider: s.provider,
    state: s.state,
    reason: s.reason,
    authorizationUrl: currentConsentUrl(s, now),
    tokenVersion: s.token?.version ?? null,
    accessTokenExpiresAt: iso(s.token?.accessTokenExpiresAt),
    refreshTokenExpiresAt: iso(s.token?.refreshTokenExpiresAt),
    lastRefreshAt: iso(s.lastRefreshAt),
    refreshCount: s.refreshCount,
    partitions: s.partitions,
    lastSync: s.lastSync,
    lastError: s.lastError,
    connection: s.connection ? { ...s.connection, checkedAt: new Date(s.connection.checkedAt).toISOString() } : null,
    nextWakeAt: wake ? iso(Math.max(wake.at, now)) : null,
    sageUserId: s.sageUserId,
    lastReconsent: s.lastReconsent,
  };
}

/** The `syncPlan` query answer: what a sync run plans from (contract §7 modes are decided by the sync activity). */
export function toSyncPlan(s: MachineState): SyncPlanAnswer {
  const r = s.fullSyncRequest;
  return {
    state: s.state,
    reason: s.reason,
    partitions: s.partitions,
    ...(s.provider === 'sage-200' ? { edition: s.settings.sage200?.edition ?? SAGE200_DEFAULT_EDITION } : {}),
    fullSyncRequest: r ? { id: r.id, requestedAt: r.requestedAt } : null,
  };
}

/**
 * The workflow's "current details" (markdown, shown by the Temporal UI on the workflow page): state, reason and, while
 * awaiting (re)authorization, the consent link, so an operator needs no query to find it. Never a secret.
 */
export function currentDetails(s: MachineState, now: number): string {
  const url = currentConsentUrl(s, now);
  const lines = [`**State:** \`${s.state}\``, `**Reason:** ${s.reason ? `\`${s.reason}\`` : '–'}`];
  if (url) lines.push(`**Consent link:** [open to authorize at Sage](${url})`, '', url);
  if (s.state === 'connected') lines.push(`**Partitions:** ${s.partitions.map((p) => p.id).join(', ') || '–'}`);
  return lines.join('\n');
}

/** What the `connections` document mirrors (contract §4). Dates as ISO strings; the activity turns them into BSON Dates. */
export function toMirror(s: MachineState) {
  return {
    _id: s.workflowId,
    tenantId: s.tenantId,
    provider: s.provider,
    state: s.state,
    reason: s.reason,
    partitions: s.partitions,
    accessTokenExpiresAt: iso(s.token?.accessTokenExpiresAt),
    refreshTokenExpiresAt: iso(s.token?.refreshTokenExpiresAt),
    lastRefreshAt: iso(s.lastRefreshAt),
    lastSyncAt: s.lastSyncAt,
    lastError: s.lastError,
    connectionAvailable: s.connection?.available ?? null,
    sageUserId: s.sageUserId,
    lastReconsent: s.lastReconsent,
    // The sync reads the Sage 200 edition from here: without it a Standard (`sage200`) tenant would call the wrong base URL.
    ...(s.provider === 'sage-200'
      ? { sage200: { edition: s.settings.sage200?.edition ?? SAGE200_DEFAULT_EDITION } }
      : {}),
  };
}
export type ConnectionMirror = ReturnType<typeof toMirror>;

function dedupe(commands: Command[]): Command[] {
  const seen = new Set<string>();
  return commands.filter((c) => {
    const key = JSON.stringify(c);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// History economy (issue 14): the wake-up timer and the `connections` mirror are written only when they must be.

/** What to do with the armed wake-up timer (epoch ms; null = none armed / nothing to wake for). */
export type TimerPlan =
  { kind: 'keep' } | { kind: 'arm'; at: number } | { kind: 'rearm'; at: number } | { kind: 'cancel' };

/**
 * The timer is re-armed only when the deadline moved EARLIER than the armed one (the timer would fire too late). A
 * deadline that is unchanged keeps its timer; one that moved later keeps it too: the timer then fires early, the loop
 * finds nothing due and arms the new deadline. Every refresh moves the keep-alive deadline later (Sage Accounting
 * rotates the refresh token), so re-arming on each move would cost a cancel and a start per sync run; keeping the
 * earlier timer costs one fire per keep-alive period (about 25 days) instead. Invariant: armed ≤ wanted, never late.
 */
export function planTimer(armedAt: number | null, wantedAt: number | null): TimerPlan {
  if (wantedAt === null) return armedAt === null ? { kind: 'keep' } : { kind: 'cancel' };
  if (armedAt === null) return { kind: 'arm', at: wantedAt };
  return armedAt <= wantedAt ? { kind: 'keep' } : { kind: 'rearm', at: wantedAt };
}

/**
 * Whether the `connections` document must be written: only when what a reader sees there differs from what is known
 * to be written (`written`, null = unknown, e.g. at the start of a run: write). `updatedAt` is the write's own time.
 */
export function mirrorNeeded(written: ConnectionMirror | null, s: MachineState): boolean {
  return written === null || JSON.stringify(written) !== JSON.stringify(toMirror(s));
}

/**
 * The refresh activity wrote the token times itself (`mirrorTokenTimes`): record them as written, so the mirror is
 * not written again for them. (`lastRefreshAt` there is the store's `obtainedAt`, the workflow's is its own clock a
 * moment later: the same refresh.)
 */
export function tokenTimesWritten(
  written: ConnectionMirror | null,
  s: MachineState,
  mirroredVersion: number,
): ConnectionMirror | null {
  // A late answer about another version wrote other times than the state holds: not known, so mirrored again.
  if (written === null || s.token?.version !== mirroredVersion) return written;
  const m = toMirror(s);
  return {
    ...written,
    accessTokenExpiresAt: m.accessTokenExpiresAt,
    refreshTokenExpiresAt: m.refreshTokenExpiresAt,
    lastRefreshAt: m.lastRefreshAt,
  };
}

/**
 * A succeeded partition sync wrote `lastSyncAt` (its `finishedAt`, as a `$max`) from its own activity
 * (`syncCustomerPartition`): record it as written. Failed and skipped reports are mirrored by the workflow as before.
 */
export function syncTimeWritten(
  written: ConnectionMirror | null,
  s: MachineState,
  partitionId: string,
  summary: Pick<PartitionSyncSummary, 'status' | 'finishedAt'>,
): ConnectionMirror | null {
  // Reports of partitions the connection does not have are ignored by `syncReported`; so are they here.
  if (written === null || summary.status !== 'succeeded' || !s.partitions.some((p) => p.id === partitionId))
    return written;
  const lastSyncAt =
    !written.lastSyncAt || summary.finishedAt > written.lastSyncAt ? summary.finishedAt : written.lastSyncAt;
  return { ...written, lastSyncAt };
}
