/**
 * OAuth for both Sage products behind one small interface: consent URL, code exchange, refresh, revoke. The token
 * endpoints are called with got and `retry: { limit: 0 }`: a refresh rotates a single-use refresh token, so replaying it
 * blindly after an ambiguous failure would burn the grant. Retries are decided by the caller (the refresh activity), which
 * first checks the token store. Error bodies become `SageOAuthError` (definitive or not) or transient network/5xx errors.
 */
import got, { HTTPError, RequestError } from 'got';
import { z } from 'zod';
import type { Config } from '../config.js';
import { SageApiError, SageNetworkError, SageOAuthError } from '../errors.js';
import type { Provider } from '../messages.js';
import { parseRetryAfter } from './http.js';
import { providerFor } from './registry.js';

/** What a token endpoint gave us. Secrets: never log, never put in workflow state. */
export interface TokenSet {
  accessToken: string;
  /** Null when the provider sent none (then the previous refresh token stays valid). */
  refreshToken: string | null;
  /** Seconds, from `expires_in` of this very response (Sage says not to hard-code it). */
  expiresIn: number;
  /** Seconds, from `refresh_token_expires_in` when given, else the provider's documented default. */
  refreshTokenExpiresIn: number;
  scope?: string;
}

export interface ProviderOAuth {
  provider: Provider;
  /** `codeChallenge`: a PKCE S256 challenge (src/tokens/pkce.ts), sent with `code_challenge_method=S256`. */
  authorizationUrl(config: Config, p: { state: string; country?: string; codeChallenge?: string }): string;
  /** `codeVerifier`: the PKCE verifier of the consent the code came from (secret: never log it). */
  exchangeCode(config: Config, p: { code: string; codeVerifier?: string }): Promise<TokenSet>;
  /** `opts.signal` aborts the call; `opts.timeoutMs` overrides the request timeout. */
  refresh(config: Config, refreshToken: string, opts?: CallOptions): Promise<TokenSet>;
  /** Revokes the grant (refresh token) at Sage. */
  revoke(config: Config, refreshToken: string): Promise<void>;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Request timeout in ms (default TOKEN_CALL_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** The OAuth client of a provider (from the provider registry). */
export function oauthFor(provider: Provider): ProviderOAuth {
  return providerFor(provider).oauth;
}

/** Token responses are validated: a 200 without `access_token` is a Sage fault, not a token. */
export const TokenResponse = z
  .object({
    access_token: z.string().min(1),
    refresh_token: z.string().min(1).optional(),
    expires_in: z.coerce.number().positive(),
    refresh_token_expires_in: z.coerce.number().positive().optional(),
    token_type: z.string().optional(),
    scope: z.string().optional(),
  })
  .loose();

const OAuthErrorBody = z.object({ error: z.string().min(1), error_description: z.string().optional() }).loose();

/** Short request timeout: a token call that hangs is a transient failure, and the activity must finish well inside its own timeout. */
export const TOKEN_CALL_TIMEOUT_MS = 20_000;
/**
 * Refresh calls wait longer: once sent, Sage may rotate the pair, and giving up throws that answer away. A process that
 * was stalled (GC, SIGSTOP, a slow host) runs its expired timers before it reads the bytes already in its socket, so a
 * short timeout loses answers that did arrive. Still well inside the refresh lease (REFRESH_LEASE_MS, 90 s), so a retry
 * waiting on the lease never calls Sage while this call can still succeed.
 */
export const REFRESH_CALL_TIMEOUT_MS = 60_000;

/**
 * POSTs a form to a Sage OAuth endpoint once (no automatic retry) and returns the parsed JSON body, or throws
 * `SageOAuthError` (an `{error}` body), `SageApiError` (5xx/429/other without an OAuth error) or `SageNetworkError`.
 */
export async function postForm(
  provider: Provider,
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
  opts: CallOptions = {},
): Promise<unknown> {
  const path = new URL(url).pathname;
  try {
    const res = await got.post(url, {
      form,
      headers: { accept: 'application/json', 'user-agent': 'sage-tenant-sync', ...headers },
      retry: { limit: 0 },
      timeout: { request: opts.timeoutMs ?? TOKEN_CALL_TIMEOUT_MS },
      // The form carries the client secret and a refresh token (and Sage 200 calls a subscription key): never re-send
      // them to wherever a `Location` points. A redirect from a token endpoint is an error, not a new address.
      followRedirect: false,
      ...(opts.signal ? { signal: opts.signal } : {}),
      responseType: 'text',
      throwHttpErrors: true,
    });
    if (res.statusCode >= 300)
      throw new SageApiError(
        provider,
        res.statusCode,
        path,
        'redirect refused (token and revoke calls never follow redirects)',
      );
    try {
      return res.body ? JSON.parse(res.body) : {};
    } catch {
      throw new SageApiError(provider, res.statusCode, path, `malformed JSON body (${res.body.length} bytes)`);
    }
  } catch (err) {
    if (err instanceof HTTPError) {
      const status = err.response.statusCode;
      const text = String(err.response.body ?? '');
      let parsed: z.infer<typeof OAuthErrorBody> | undefined;
      try {
        const r = OAuthErrorBody.safeParse(JSON.parse(text));
        if (r.success) parsed = r.data;
      } catch {
        /* not JSON */
      }
      // 429 and 5xx are transient whatever the body says; an `{error}` body on a 4xx is Sage's verdict on the grant.
      if (status === 429 || status >= 500 || !parsed) {
        throw new SageApiError(
          provider,
          status,
          path,
          text.slice(0, 300),
          parseRetryAfter(err.response.headers['retry-after']),
        );
      }
      throw new SageOAuthError(provider, status, parsed.error, parsed.error_description);
    }
    if (err instanceof RequestError) throw new SageNetworkError(provider, err.code, err.message);
    throw err;
  }
}

export function toTokenSet(provider: Provider, body: unknown, defaultRefreshLifetimeSec: number): TokenSet {
  const parsed = TokenResponse.safeParse(body);
  if (!parsed.success)
    throw new SageApiError(
      provider,
      200,
      'token',
      `token response without the expected fields (${parsed.error.issues.map((i) => i.path.join('.')).join(', ')})`,
    );
  const t = parsed.data;
  return {
    accessToken: t.access_token,
    refreshToken: t.refresh_token ?? null,
    expiresIn: t.expires_in,
    refreshTokenExpiresIn: t.refresh_token_expires_in ?? defaultRefreshLifetimeSec,
    ...(t.scope ? { scope: t.scope } : {}),
  };
}

/** Adds a PKCE S256 challenge to a consent URL. */
export function addPkceChallenge(url: URL, codeChallenge: string | undefined): void {
  if (!codeChallenge) return;
  url.searchParams.set('code_challenge', codeChallenge);
  url.searchParams.set('code_challenge_method', 'S256');
}

/**
 * A provider's client credentials (`prefix`: its environment prefix, e.g. `SAGE200`), or a clear error when they are
 * not configured. Each provider's OAuth module passes its own.
 */
export function clientCredentials(
  provider: Provider,
  prefix: string,
  clientId: string | undefined,
  clientSecret: string | undefined,
): { clientId: string; clientSecret: string } {
  if (!clientId || !clientSecret) {
    throw new SageOAuthError(
      provider,
      0,
      'invalid_client',
      `${prefix}_CLIENT_ID / ${prefix}_CLIENT_SECRET are not configured`,
    );
  }
  return { clientId, clientSecret };
}
