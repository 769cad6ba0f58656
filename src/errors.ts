/**
 * Typed errors and their mapping, in one place. Provider code throws these; `toActivityFailure` decides what Temporal
 * does with them (retry, retry later, or stop), so no other module needs to know retry semantics.
 */
import { ApplicationFailure } from '@temporalio/common';
import { redactText } from './lib/logger.js';
import { ErrorTypes, type Provider } from './messages.js';

/** OAuth error codes after which retrying the same grant can never succeed: the tenant must consent again. */
export const DEFINITIVE_OAUTH_ERRORS = new Set(['invalid_grant', 'invalid_client', 'unauthorized_client', 'unsupported_grant_type']);

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

/** The network failed before Sage answered (reset, timeout, refused). Always transient. */
export class SageNetworkError extends Error {
  override name = 'SageNetworkError';
  constructor(public readonly provider: Provider, public readonly code: string, message: string) {
    super(`Sage ${provider} network error ${code}: ${redactText(message)}`);
  }
}

/** The connection cannot get a token until the tenant consents again. */
export class ReauthorizationRequiredError extends Error {
  override name = ErrorTypes.ReauthorizationRequired;
  constructor(public readonly reason: string, message = `reauthorization required (${reason})`) {
    super(message);
  }
}

/** Bad input that no retry can fix. */
export class InvalidInputError extends Error {
  override name = ErrorTypes.InvalidInput;
}

/**
 * Maps an error thrown inside an activity to what Temporal should do with it. Transient Sage errors are retried by the
 * activity retry policy (honouring Retry-After); definitive ones stop retries at once.
 */
export function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ReauthorizationRequiredError) {
    return ApplicationFailure.create({ type: ErrorTypes.ReauthorizationRequired, message: err.message, nonRetryable: true, details: [err.reason] });
  }
  if (err instanceof InvalidInputError) {
    return ApplicationFailure.create({ type: ErrorTypes.InvalidInput, message: err.message, nonRetryable: true });
  }
  if (err instanceof SageOAuthError) {
    return ApplicationFailure.create({ type: err.name, message: err.message, nonRetryable: err.definitive, details: [{ error: err.error, reason: err.reason }] });
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
