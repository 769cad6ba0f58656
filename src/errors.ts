/**
 * Every error type of the service, in one place, and the ONE mapping to Temporal (`toActivityFailure`). Provider and
 * token code throws these; the activity boundary (`createActivities`) maps them, so no other module builds an
 * `ApplicationFailure` for them or needs to know retry semantics. Each class names its failure `type` (the strings
 * are in the sandbox-safe `error-types.ts`, which workflows import) and its `details` (one shape: `FailureDetails`).
 */
import { ApplicationFailure } from '@temporalio/common';
import { DEFINITIVE_OAUTH_ERRORS, reasonForOAuthError, type AccessReason, type Reason } from './connection/reasons.js';
import { ErrorTypes, type ErrorType, type FailureDetails } from './error-types.js';
import { redactText } from './lib/logger.js';
import type { Provider } from './messages.js';

export { ErrorTypes, readFailureDetails, type ErrorType, type FailureDetails } from './error-types.js';

/** An error that maps to a Temporal failure of its own `type`. */
export abstract class TypedError extends Error {
  abstract readonly type: ErrorType;
  /** True: retrying the same call cannot succeed. */
  abstract readonly nonRetryable: boolean;
  get details(): FailureDetails {
    return {};
  }
  /** How long Temporal should wait before the next attempt (Sage's `Retry-After`), when known. */
  get retryAfterMs(): number | undefined {
    return undefined;
  }
}

/** A typed error that carries only its message: its `type`, whether it is retryable, and its `name` (default: the type). */
function typedError<T extends ErrorType>(type: T, opts: { nonRetryable: boolean }, name: string = type) {
  return class extends TypedError {
    override name = name;
    readonly type = type;
    readonly nonRetryable = opts.nonRetryable;
  };
}

/**
 * An error answer from a Sage OAuth endpoint (`{error, error_description}`), or a token step of ours that cannot go on
 * (`SageOAuthError.local`: no stored tokens, no PKCE verifier). `opts.reason` overrides the reason derived from the
 * error code (e.g. `refresh_response_lost`, `authorization_code_invalid`).
 */
export class SageOAuthError extends TypedError {
  override name = ErrorTypes.SageOAuth;
  readonly type = ErrorTypes.SageOAuth;
  constructor(
    public readonly provider: Provider | null,
    public readonly status: number,
    public readonly error: string,
    public readonly description?: string,
    private readonly opts: { reason?: Reason; message?: string; definitive?: boolean } = {},
  ) {
    super(
      opts.message ?? `Sage ${provider} OAuth ${status} ${error}${description ? `: ${redactText(description)}` : ''}`,
    );
  }
  /** A failure of ours, not an answer from Sage; always definitive. */
  static local(error: string, reason: Reason, message: string): SageOAuthError {
    return new SageOAuthError(null, 0, error, undefined, { reason, message, definitive: true });
  }
  /** The same answer reported under another reason code. */
  withReason(reason: Reason): SageOAuthError {
    return new SageOAuthError(this.provider, this.status, this.error, this.description, {
      ...this.opts,
      reason,
      message: this.message,
    });
  }
  get definitive(): boolean {
    return this.opts.definitive ?? DEFINITIVE_OAUTH_ERRORS.has(this.error);
  }
  get nonRetryable(): boolean {
    return this.definitive;
  }
  get reason(): Reason {
    return this.opts.reason ?? reasonForOAuthError(this.error);
  }
  override get details(): FailureDetails {
    return {
      error: this.error,
      reason: this.reason,
      description: this.description ? redactText(this.description) : null,
    };
  }
}

/** A non-2xx answer from a Sage API. `retryAfterMs` is set from `Retry-After` when Sage sent one. */
export class SageApiError extends TypedError {
  override name = ErrorTypes.SageApi;
  readonly type = ErrorTypes.SageApi;
  constructor(
    public readonly provider: Provider,
    public readonly status: number,
    public readonly path: string,
    public readonly detail: string,
    private readonly retryAfterMsValue?: number,
  ) {
    super(`Sage ${provider} API ${status} on ${path}: ${redactText(detail).slice(0, 500)}`);
  }
  get transient(): boolean {
    return this.status === 429 || this.status >= 500;
  }
  get unauthorized(): boolean {
    return this.status === 401;
  }
  /** A 401 is retried: the next attempt asks for a fresh token. */
  get nonRetryable(): boolean {
    return !this.transient && !this.unauthorized;
  }
  override get details(): FailureDetails {
    return { status: this.status };
  }
  override get retryAfterMs(): number | undefined {
    return this.retryAfterMsValue;
  }
}

/** Sage refused one partition for a reason a token refresh cannot fix; the message names the cause for the operator. */
/** Non-retryable: the next scheduled run tries again. */
export class SageAccessDeniedError extends typedError(ErrorTypes.SageAccessDenied, { nonRetryable: true }) {
  constructor(
    public readonly provider: Provider,
    public readonly reason: AccessReason,
    public readonly status: number,
    message: string,
  ) {
    super(`${reason}: ${redactText(message)}`);
  }
  override get details(): FailureDetails {
    return { reason: this.reason, status: this.status };
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
export class SageNetworkError extends typedError(ErrorTypes.SageNetwork, { nonRetryable: false }) {
  constructor(
    public readonly provider: Provider,
    public readonly code: string,
    message: string,
  ) {
    super(`Sage ${provider} network error ${code}: ${redactText(message)}`);
  }
}

/** Sage broke its own protocol (a foreign `$next`, endless paging, rows out of order): retrying cannot help. */
export class SageProtocolError extends typedError(ErrorTypes.SageProtocol, { nonRetryable: true }) {}

/** Sage answered for another business than the one asked for: writing its rows would corrupt our partition. */
export class PartitionMismatchError extends typedError(ErrorTypes.PartitionMismatch, { nonRetryable: true }) {}

/** Input that cannot be used (a bad cursor, a bad argument); the message names it. */
export class InvalidInputError extends typedError(ErrorTypes.InvalidInput, { nonRetryable: true }) {}

/** The connection cannot get a token until the tenant consents again. */
export class ReauthorizationRequiredError extends typedError(ErrorTypes.ReauthorizationRequired, {
  nonRetryable: true,
}) {
  constructor(
    /** A connection reason (`src/connection/reasons.ts`), else the connection's state or `connection_not_found`. */
    public readonly reason: string,
    message = `reauthorization required (${reason})`,
  ) {
    super(message);
  }
  override get details(): FailureDetails {
    return { reason: this.reason };
  }
}

/** The token could not be refreshed for a transient reason and the current one is (nearly) expired (client side). */
export class TokenUnavailableError extends typedError(ErrorTypes.TokenUnavailable, { nonRetryable: true }) {}

/** Another attempt still holds the refresh lease at this attempt's deadline: a later attempt waits again. */
export class RefreshLeaseHeldError extends typedError(ErrorTypes.RefreshLeaseHeld, { nonRetryable: false }) {}

/** A webhook delivery failed (non-2xx, network): retried with backoff. */
export class WebhookDeliveryError extends typedError(ErrorTypes.WebhookDelivery, { nonRetryable: false }) {}

/** The webhook URL itself is not allowed (scheme, non-public address): retrying cannot help. */
export class WebhookRefusedError extends typedError(
  ErrorTypes.WebhookRefused,
  { nonRetryable: true },
  'WebhookRefusedError',
) {}

/**
 * THE mapping of an error thrown inside an activity to what Temporal should do with it (used by every activity, see
 * `createActivities`). Transient Sage errors are retried by the activity retry policy (honouring Retry-After);
 * definitive ones stop retries at once. Anything else passes through unchanged.
 */
export function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof TypedError) {
    return ApplicationFailure.create({
      type: err.type,
      message: err.message,
      nonRetryable: err.nonRetryable,
      nextRetryDelay: err.retryAfterMs,
      details: [err.details],
    });
  }
  return err;
}

/** Wraps activity functions so that every one of them throws through `toActivityFailure`. */
export function mappingFailures<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = {
      async [name](...args: never[]) {
        try {
          return await fn(...args);
        } catch (err) {
          throw toActivityFailure(err);
        }
      },
    }[name];
  }
  return wrapped as T;
}
