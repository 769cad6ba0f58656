/**
 * Typed errors and their mapping, in one place. Provider code throws these; `toActivityFailure` decides what Temporal
 * does with them (retry, retry later, or stop), so no other module needs to know retry semantics.
 */
import { ApplicationFailure } from '@temporalio/common';
import { redactText } from './lib/logger.js';
import { ErrorTypes, type Provider } from './messages.js';

/** OAuth error codes after which retrying the same grant can never succeed: the tenant must consent again. */
export const DEFINITIVE_OAUTH_ERRORS = new Set([
  'invalid_grant',
  'invalid_client',
  'unauthorized_client',
  'unsupported_grant_type',
]);

/** Machine reason codes shown in `status.reason` (listed in the README). */
export const REASON_FOR_OAUTH_ERROR: Record<string, string> = {
  invalid_grant: 'refresh_token_invalid',
  invalid_client: 'client_invalid',
  unauthorized_client: 'client_unauthorized',
  unsupported_grant_type: 'client_unauthorized',
  access_denied: 'consent_denied',
};

/** An error answer from a Sage OAuth endpoint (`{error, error_description}`). */
export class SageOAuthError extends Error {
  override name = 'SageOAuthError';
  constructor(
    public readonly provider: Provider,
    public readonly status: number,
    public readonly error: string,
    public readonly description?: string,
  ) {
    super(`Sage ${provider} OAuth ${status} ${error}${description ? `: ${redactText(description)}` : ''}`);
  }
  get definitive(): boolean {
    return DEFINITIVE_OAUTH_ERRORS.has(this.error);
  }
  get reason(): string {
    return REASON_FOR_OAUTH_ERROR[this.error] ?? `oauth_${this.error}`;
  }
}

/** A non-2xx answer from a Sage API. `retryAfterMs` is set from `Retry-After` when Sage sent one. */
export class SageApiError extends Error {
  override name = 'SageApiError';
  constructor(
    public readonly provider: Provider,
    public readonly status: number,
    public readonly path: string,
    public readonly detail: string,
    public readonly retryAfterMs?: number,
  ) {
    super(`Sage ${provider} API ${status} on ${path}: ${redactText(detail).slice(0, 500)}`);
  }
  get transient(): boolean {
    return this.status === 429 || this.status >= 500;
  }
  get unauthorized(): boolean {
    return this.status === 401;
  }
}

/**
 * Why Sage refused a partition although the grant is fine (contract: `sync_runs.reason`, `status.lastSync[p].reason`).
 * These are access problems of one business/site, not token problems: refreshing cannot fix them.
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

/** The error type of an access problem in Temporal (non-retryable: the next scheduled run tries again). */
export const ACCESS_DENIED_ERROR_TYPE = 'SageAccessDenied';

/** Sage refused one partition for a reason a token refresh cannot fix; the message names the cause for the operator. */
export class SageAccessDeniedError extends Error {
  override name = ACCESS_DENIED_ERROR_TYPE;
  constructor(
    public readonly provider: Provider,
    public readonly reason: AccessReason,
    public readonly status: number,
    message: string,
  ) {
    super(`${reason}: ${redactText(message)}`);
  }
}

/** Sage Accounting's error array `[{ $severity, $dataCode, $message, $source }]`, or null when the body is not one. */
export function sageErrorItems(detail: string): { dataCode: string; message: string }[] | null {
  try {
    const body = JSON.parse(detail) as unknown;
    if (!Array.isArray(body)) return null;
    return body
      .filter((x): x is Record<string, unknown> => !!x && typeof x === 'object')
      .map((x) => ({
        dataCode: typeof x.$dataCode === 'string' ? x.$dataCode : '',
        message: typeof x.$message === 'string' ? x.$message : '',
      }));
  } catch {
    return null;
  }
}

/**
 * A 401/403 whose answer itself names an access problem (so no refresh is tried), or null when it may be the token:
 * - Sage Accounting 401 `AuthorizationFailure` / a `$message` naming the subscription → `subscription_inactive`
 *   ("No active subscription. (MSE)": trial ended or subscription cancelled);
 * - Sage Accounting 403 (`BusinessAccessDenied`, `MultiUserAccessDenied`: the user may not use that business/module)
 *   → `business_access_denied`;
 * - Sage 200 401 from API Management about the subscription key → `subscription_key_invalid`;
 * - Sage 200 403 → `site_access_denied`.
 * A Sage 200 401 with an empty body is ambiguous (expired token or unreachable site): one refresh decides.
 */
export function accessProblem(err: SageApiError): SageAccessDeniedError | null {
  if (err.status !== 401 && err.status !== 403) return null;
  if (err.provider === 'sage-accounting') {
    const items = sageErrorItems(err.detail) ?? [];
    const subscription = items.find((i) => i.dataCode === 'AuthorizationFailure' || /subscription/i.test(i.message));
    if (err.status === 401 && subscription) {
      return new SageAccessDeniedError(
        err.provider,
        'subscription_inactive',
        401,
        `Sage Accounting says the business has no active subscription (${subscription.dataCode}: ${subscription.message}); the tenant must renew it in Sage`,
      );
    }
    if (err.status === 403) {
      const first = items[0];
      return new SageAccessDeniedError(
        err.provider,
        'business_access_denied',
        403,
        `Sage Accounting refused access to this business (${first ? `${first.dataCode}: ${first.message}` : 'HTTP 403'}); the consenting user lacks access or the role`,
      );
    }
    return null;
  }
  if (err.status === 401 && /subscription key/i.test(err.detail)) {
    return new SageAccessDeniedError(
      err.provider,
      'subscription_key_invalid',
      401,
      `Sage 200 API Management rejected the subscription key (${err.detail.slice(0, 200)}); check SAGE200_SUBSCRIPTION_KEY`,
    );
  }
  if (err.status === 403)
    return new SageAccessDeniedError(
      err.provider,
      'site_access_denied',
      403,
      'Sage 200 refused access to this site/company (HTTP 403)',
    );
  return null;
}

/** The network failed before Sage answered (reset, timeout, refused). Always transient. */
export class SageNetworkError extends Error {
  override name = 'SageNetworkError';
  constructor(
    public readonly provider: Provider,
    public readonly code: string,
    message: string,
  ) {
    super(`Sage ${provider} network error ${code}: ${redactText(message)}`);
  }
}

/** The connection cannot get a token until the tenant consents again. */
export class ReauthorizationRequiredError extends Error {
  override name = ErrorTypes.ReauthorizationRequired;
  constructor(
    public readonly reason: string,
    message = `reauthorization required (${reason})`,
  ) {
    super(message);
  }
}

/**
 * Maps an error thrown inside an activity to what Temporal should do with it. Transient Sage errors are retried by the
 * activity retry policy (honouring Retry-After); definitive ones stop retries at once.
 */
export function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ReauthorizationRequiredError) {
    return ApplicationFailure.create({
      type: ErrorTypes.ReauthorizationRequired,
      message: err.message,
      nonRetryable: true,
      details: [err.reason],
    });
  }
  if (err instanceof SageAccessDeniedError) {
    return ApplicationFailure.create({
      type: ACCESS_DENIED_ERROR_TYPE,
      message: err.message,
      nonRetryable: true,
      details: [{ reason: err.reason, status: err.status }],
    });
  }
  if (err instanceof SageOAuthError) {
    return ApplicationFailure.create({
      type: err.name,
      message: err.message,
      nonRetryable: err.definitive,
      details: [{ error: err.error, reason: err.reason }],
    });
  }
  if (err instanceof SageApiError) {
    return ApplicationFailure.create({
      type: err.name,
      message: err.message,
      nonRetryable: !err.transient && !err.unauthorized,
      nextRetryDelay: err.retryAfterMs,
      details: [{ status: err.status }],
    });
  }
  return err;
}
