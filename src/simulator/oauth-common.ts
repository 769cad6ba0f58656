/** Pieces both providers' OAuth endpoints share: reading client credentials, redirecting with parameters, error pages. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SimProvider } from './data.js';
import type { Grant, SimulatorState, TokenRecord } from './state.js';

export type Params = Record<string, string | undefined>;

/** Query or body as flat strings (a repeated parameter keeps its first value). */
export function flat(input: unknown): Params {
  const out: Params = {};
  if (!input || typeof input !== 'object') return out;
  for (const [k, v] of Object.entries(input as Record<string, unknown>)) {
    const first = Array.isArray(v) ? v[0] : v;
    if (typeof first === 'string') out[k] = first;
    else if (typeof first === 'number' || typeof first === 'boolean') out[k] = String(first);
  }
  return out;
}

export interface ClientCredentials {
  clientId?: string;
  clientSecret?: string;
  /** Credentials came both in the body and as HTTP Basic and disagree. */
  conflicting: boolean;
}

/** Client credentials from the form body (Sage's documented way) or an HTTP Basic header (accepted too). */
export function clientCredentials(request: FastifyRequest, body: Params): ClientCredentials {
  let basicId: string | undefined;
  let basicSecret: string | undefined;
  const auth = request.headers.authorization;
  if (auth?.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i >= 0) {
      basicId = decodeURIComponent(decoded.slice(0, i));
      basicSecret = decodeURIComponent(decoded.slice(i + 1));
    }
  }
  const clientId = body.client_id ?? basicId;
  const clientSecret = body.client_secret ?? basicSecret;
  const conflicting =
    (basicId !== undefined && body.client_id !== undefined && basicId !== body.client_id) ||
    (basicSecret !== undefined && body.client_secret !== undefined && basicSecret !== body.client_secret);
  return { clientId, clientSecret, conflicting };
}

/** `redirect_uri` plus parameters, keeping any query the registered URI already has. */
export function redirectUrl(base: string, params: Params): string {
  const url = new URL(base);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.append(k, v);
  return url.toString();
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** When the redirect URI or client id is bad an OAuth server must not redirect; it shows an error page instead. */
export function errorPage(reply: FastifyReply, title: string, detail: string): FastifyReply {
  return reply
    .code(400)
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><html><head><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(detail)}</p></body></html>`,
    );
}

export function oauthError(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').send({ error, error_description: description });
}

export function isFormEncoded(request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded');
}

export function acceptsJson(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').toLowerCase().includes('application/json');
}

/**
 * The answers both providers' OAuth endpoints give in the same way, counted at the simulator. What differs (messages,
 * the status of `invalid_grant`: Sage Accounting 400, Sage ID/Auth0 403) stays in each provider's file.
 */
export function oauthReplies(state: SimulatorState, provider: SimProvider, opts: { invalidGrantStatus: 400 | 403 }) {
  return {
    /** A missing or malformed parameter (`invalid_request`, 400). */
    invalidRequest(reply: FastifyReply, description: string): FastifyReply {
      state.counters.inc('invalidRequests', provider);
      return oauthError(reply, 400, 'invalid_request', description);
    },
    invalidGrant(reply: FastifyReply, description: string): FastifyReply {
      state.counters.inc('invalidGrants', provider);
      return oauthError(reply, opts.invalidGrantStatus, 'invalid_grant', description);
    },
    /** A token response is never cached (RFC 6749 §5.1). */
    sendTokens(reply: FastifyReply, body: object): FastifyReply {
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(body);
    },
    /** A bad client id or redirect URI at authorize: an error page, never a redirect (RFC 6749 §4.1.2.1). */
    refusePage(reply: FastifyReply, title: string, detail: string): FastifyReply {
      state.counters.inc('authorizeErrors', provider);
      return errorPage(reply, title, detail);
    },
    /** Authorize errors after the redirect URI checked out go back to it, with the caller's `state`. */
    redirectError(reply: FastifyReply, redirectUri: string, stateParam: string | undefined) {
      return (error: string, description: string) => {
        state.counters.inc('authorizeErrors', provider);
        return reply.redirect(
          redirectUrl(redirectUri, { error, error_description: description, state: stateParam }),
          302,
        );
      };
    },
    /** The planned consent was a denial: back to the client with Sage's error. */
    consentDenied(
      reply: FastifyReply,
      redirectUri: string,
      deny: { error: string; description: string },
      stateParam?: string,
    ) {
      state.counters.inc('consentDenials', provider);
      return reply.redirect(
        redirectUrl(redirectUri, { error: deny.error, error_description: deny.description, state: stateParam }),
        302,
      );
    },
    /** The refresh token's record and grant when it is one of this provider's refresh tokens (live or not). */
    refreshGrant(token: string): { rec: TokenRecord; g: Grant } | null {
      const rec = state.tokens.get(token);
      const g = rec ? state.grants.get(rec.grantId) : undefined;
      return rec && rec.kind === 'refresh' && g && g.provider === provider ? { rec, g } : null;
    },
    /**
     * Revocation (RFC 7009): only the grant's current refresh token revokes it; access tokens cannot be revoked and a
     * stale refresh token is already invalid. The caller answers success either way, so a client cannot probe tokens.
     */
    revokeIfCurrentRefresh(token: string): void {
      const rec = state.tokens.get(token);
      const g = rec ? state.grants.get(rec.grantId) : undefined;
      if (rec && g && g.provider === provider && rec.kind === 'refresh' && g.currentRefresh === token) {
        state.revokeGrant(g, 'revoked_by_client');
        state.counters.inc('revokes', provider);
      }
    },
  };
}
