/**
 * The failure types (`ApplicationFailure.type`) of this service and the one `details` shape they carry. Sandbox-safe
 * (no imports), so workflows use it too; the error classes and the one mapping to Temporal are in `src/errors.ts`.
 * The strings are part of saved histories and of what clients match on: never rename one.
 */
export const ErrorTypes = {
  /** Bad workflow, update or activity input (contract §7); the message names the field. */
  InvalidInput: 'InvalidInput',
  /** Not connected: the tenant must consent again (contract §3). */
  ReauthorizationRequired: 'ReauthorizationRequired',
  /**
   * `completeAuthorization` refused a re-consent (details `{ reason, unreachablePartitions }`, e.g.
   * `reconsent_no_partitions`): the new grant was revoked at Sage and the connection kept its previous grant, tokens
   * and partitions.
   */
  ReconsentRefused: 'ReconsentRefused',
  /** Ask again in a moment (the connection is continuing as new, or another authorization is being completed). */
  RetryLater: 'RetryLater',
  /** The token could not be refreshed for a transient reason and the current one is (nearly) expired. */
  TokenUnavailable: 'TokenUnavailable',
  /** The update does not fit the connection's state (unknown/used/expired consent state, disconnected). */
  InvalidState: 'InvalidState',
  /** An error answer from a Sage OAuth endpoint, or a token step that cannot go on (details `{ error, reason }`). */
  SageOAuth: 'SageOAuthError',
  /** A non-2xx answer from a Sage API (details `{ status }`). */
  SageApi: 'SageApiError',
  /** The network failed before Sage answered. */
  SageNetwork: 'SageNetworkError',
  /** Sage refused one partition for a reason a refresh cannot fix (details `{ reason, status }`). */
  SageAccessDenied: 'SageAccessDenied',
  /** Sage broke its own protocol (paging, ordering, foreign `$next`): retrying the same request cannot help. */
  SageProtocol: 'SageProtocolError',
  /** Sage answered for another business than the one asked for. */
  PartitionMismatch: 'PartitionMismatch',
  /** Another attempt holds the refresh lease past this attempt's deadline (retryable). */
  RefreshLeaseHeld: 'RefreshLeaseHeld',
  /**
   * A `syncCustomers` run in which a partition failed (a workflow failure, not an activity's: its details are the
   * run's per-partition summaries, as the workflow result would have been).
   */
  SyncFailed: 'SyncFailed',
  /** A webhook URL that is not allowed (scheme, non-public address). */
  WebhookRefused: 'WebhookRefused',
  /** A webhook delivery failed (retryable). */
  WebhookDelivery: 'WebhookDeliveryError',
} as const;
export type ErrorType = (typeof ErrorTypes)[keyof typeof ErrorTypes];

/** The one shape of `ApplicationFailure.details[0]` for our failures; each type fills the fields it has. */
export interface FailureDetails {
  /** Machine reason code (`src/connection/reasons.ts`). */
  reason?: string;
  /** The OAuth error code Sage sent (or ours: `tokens_missing`, `pkce_state`). */
  error?: string;
  /** HTTP status of Sage's answer. */
  status?: number;
  description?: string | null;
  unreachablePartitions?: string[];
}

/**
 * Reads `details[0]` of a failure. Older workers (and saved histories) sent the reason of `ReauthorizationRequired`
 * as a bare string; it reads as `{ reason }`.
 */
export function readFailureDetails(details: readonly unknown[] | null | undefined): FailureDetails {
  const d = details?.[0];
  if (typeof d === 'string') return { reason: d };
  if (!d || typeof d !== 'object') return {};
  const o = d as Record<string, unknown>;
  return {
    ...(typeof o.reason === 'string' ? { reason: o.reason } : {}),
    ...(typeof o.error === 'string' ? { error: o.error } : {}),
    ...(typeof o.status === 'number' ? { status: o.status } : {}),
    ...(typeof o.description === 'string' || o.description === null ? { description: o.description } : {}),
    ...(Array.isArray(o.unreachablePartitions)
      ? { unreachablePartitions: o.unreachablePartitions.filter((x): x is string => typeof x === 'string') }
      : {}),
  };
}
