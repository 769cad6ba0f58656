/**
 * Every machine reason code, in one typed catalogue (contract §3 `status.reason`, §4 `connections.reason`,
 * `sync_runs.reason`, `status.lastSync[p].reason`; listed in the README). Sandbox-safe (zod only, which the workflow
 * bundle preloads): the connection machine, errors, sync code, metrics, web and CLI all import it. The string values
 * are part of the contract and of saved state: never rename one.
 */
import { z } from 'zod';

/** Why a connection is in its state (`status.reason`, `connections.reason`), with the text shown beside it. */
export const CONNECTION_REASONS = {
  refresh_token_invalid: 'Sage rejected the refresh token (invalid_grant): revoked, expired or already used',
  refresh_token_expired: 'the refresh token lapsed before a refresh succeeded',
  refresh_token_expiring: 'refreshing keeps failing and the refresh token expires soon (still connected)',
  refresh_response_lost:
    'a refresh reached Sage but its answer was lost (crash in flight) and Sage rejects the old token',
  client_invalid: 'Sage rejected the client id/secret (invalid_client)',
  client_unauthorized: 'the client is not allowed this grant (unauthorized_client / unsupported_grant_type)',
  consent_denied: 'the user declined consent at Sage (access_denied)',
  consent_failed: 'Sage redirected back with another error',
  authorization_code_invalid: 'the code exchange failed (used or expired code, redirect URI or country mismatch)',
  authorization_failed: 'the code exchange failed for a transient reason; try again',
  tokens_missing: 'no stored tokens for this connection',
  token_refresh_failing: 'refreshes fail transiently (network, 5xx, 429); still connected, retrying',
  no_partitions: 'the user reaches no business/site (connection not available)',
  partition_not_found: 'a selected business/site is not reachable with this consent',
  connection_test_failed: 'listing businesses/sites failed; will retry on the next check',
  lead_business_changed: 'the Sage Accounting lead business changed since the last check',
  awaiting_consent: 'waiting for the first consent',
  reconsent_no_partitions:
    "a re-consent was refused: the new grant reaches none of the connection's businesses/sites (it was revoked at Sage; the previous grant is kept)",
  reconsent_unverified:
    'a re-consent was refused: what the new grant reaches could not be checked (it was revoked at Sage; try again)',
  disconnected: 'disconnected on request',
} as const;
export type ConnectionReason = keyof typeof CONNECTION_REASONS;
export const ConnectionReasonSchema = z.enum(
  Object.keys(CONNECTION_REASONS) as [ConnectionReason, ...ConnectionReason[]],
);

/** A reason derived from an OAuth error code that has no code of its own (`oauth_<error>`, chosen by Sage). */
export type OAuthErrorReason = `oauth_${string}`;
/** Any connection reason. */
export type Reason = ConnectionReason | OAuthErrorReason;

export function isConnectionReason(r: string): r is ConnectionReason {
  return Object.prototype.hasOwnProperty.call(CONNECTION_REASONS, r);
}

/** OAuth error codes after which retrying the same grant can never succeed: the tenant must consent again. */
export const DEFINITIVE_OAUTH_ERRORS: ReadonlySet<string> = new Set([
  'invalid_grant',
  'invalid_client',
  'unauthorized_client',
  'unsupported_grant_type',
]);

/** The reason code of an OAuth error code. */
export const REASON_FOR_OAUTH_ERROR: Readonly<Record<string, ConnectionReason>> = {
  invalid_grant: 'refresh_token_invalid',
  invalid_client: 'client_invalid',
  unauthorized_client: 'client_unauthorized',
  unsupported_grant_type: 'client_unauthorized',
  access_denied: 'consent_denied',
};

export function reasonForOAuthError(error: string): Reason {
  return REASON_FOR_OAUTH_ERROR[error] ?? `oauth_${error}`;
}

/**
 * Why Sage refused a partition although the grant is fine (`sync_runs.reason`, `status.lastSync[p].reason`). These are
 * access problems of one business/site, not token problems: refreshing cannot fix them.
 */
export const ACCESS_REASONS = [
  'subscription_inactive',
  'business_access_denied',
  'site_access_denied',
  'subscription_key_invalid',
  'edition_mismatch',
  'token_rejected',
] as const;
export type AccessReason = (typeof ACCESS_REASONS)[number];
export const AccessReasonSchema = z.enum(ACCESS_REASONS);

export function isAccessReason(r: string): r is AccessReason {
  return (ACCESS_REASONS as readonly string[]).includes(r);
}

/**
 * The reasons a reauthorization is counted under (metric label `reason`). Reasons can derive from Sage's `error`
 * strings, which Sage (or anyone answering in its place) chooses: only this bounded set becomes a label value.
 */
export const REAUTHORIZATION_METRIC_REASONS = [
  'refresh_token_invalid',
  'refresh_response_lost',
  'refresh_token_expired',
  'client_invalid',
  'client_unauthorized',
  'consent_denied',
  'tokens_missing',
  'unknown',
] as const satisfies readonly (ConnectionReason | 'unknown')[];

/** The label value for a metric whose `reason` must come from `allowed`: anything else is `other`. */
export function boundedReason<T extends string>(allowed: readonly T[], reason: string): T | 'other' {
  return (allowed as readonly string[]).includes(reason) ? (reason as T) : 'other';
}
