/**
 * Sage Accounting OAuth (www.sageone.com consent, oauth.accounting.sage.com token and revoke), served under
 * `/sage-accounting`. Strict where Sage is: form encoding + `Accept: application/json` on the token endpoint, codes
 * single-use for 60 s, exact (case-sensitive) redirect URI, rotation on every refresh with no grace, `invalid_grant`
 * HTTP 400 for anything dead.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  acceptsJson,
  clientCredentials,
  flat,
  isFormEncoded,
  oauthError,
  oauthReplies,
  redirectUrl,
  type Params,
} from '../oauth-common.js';
import { pkceMethodValid, pkceVerifies } from '../pkce.js';
import type { Grant, SimulatorState } from '../state.js';

const PROVIDER = 'sage-accounting' as const;
const SCOPES = ['full_access', 'readonly'];

export function sageAccountingOAuth(state: SimulatorState) {
  const r = oauthReplies(state, PROVIDER, { invalidGrantStatus: 400 });
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get('/oauth2/auth/central', authorize);
    // Sage's older URL without `/central` behaves the same.
    app.get('/oauth2/auth', authorize);
    app.post('/token', token);
    app.post('/revoke', revoke);
  };

  async function authorize(request: FastifyRequest, reply: FastifyReply) {
    const q = flat(request.query);
    const a = state.apps.sageAccounting;
    if (q.client_id !== a.clientId) {
      return r.refusePage(reply, 'Invalid client', 'The client_id is not registered with Sage Accounting.');
    }
    if (q.redirect_uri !== a.redirectUri) {
      return r.refusePage(
        reply,
        'Invalid callback URL',
        'The redirect_uri does not match a callback URL registered for this application (callback URLs are case-sensitive).',
      );
    }
    const back = r.redirectError(reply, a.redirectUri, q.state);
    if (q.response_type !== 'code') return back('unsupported_response_type', 'response_type must be code');
    // Sage calls `state` recommended; the simulator requires it because a client without it is open to CSRF.
    if (!q.state) return back('invalid_request', 'state is required');
    const scope = q.scope ?? 'full_access';
    if (!SCOPES.includes(scope)) return back('invalid_scope', `scope must be one of ${SCOPES.join(', ')}`);
    const pkce = pkceMethodValid(q.code_challenge, q.code_challenge_method);
    if (!pkce.ok) return back('invalid_request', pkce.reason);
    const consent = state.takeConsent(PROVIDER);
    if (consent.deny) return r.consentDenied(reply, a.redirectUri, consent.deny, q.state);
    const user = consent.user!;
    // The country picked must be the business's country, or the flow fails.
    if (q.country && q.country.toUpperCase() !== user.country) {
      return back(
        'invalid_request',
        `The selected country (${q.country.toUpperCase()}) does not match the country the business is registered in.`,
      );
    }
    const code = state.issueCode(
      {
        provider: PROVIDER,
        clientId: a.clientId,
        redirectUri: q.redirect_uri,
        userId: user.id,
        scope,
        audience: null,
        offline: true,
        codeChallenge: q.code_challenge ?? null,
        codeChallengeMethod: pkce.method,
      },
      user.country,
    );
    state.counters.inc('consents', PROVIDER);
    return reply.redirect(redirectUrl(a.redirectUri, { code: code.code, country: user.country, state: q.state }), 302);
  }

  /** Form encoding and client credentials, as Sage requires. Returns the body, or undefined after replying. */
  function checkRequest(request: FastifyRequest, reply: FastifyReply, requireAcceptJson: boolean): Params | undefined {
    if (!isFormEncoded(request)) {
      r.invalidRequest(reply, 'Content-Type must be application/x-www-form-urlencoded');
      return undefined;
    }
    if (requireAcceptJson && !acceptsJson(request)) {
      r.invalidRequest(reply, 'The Accept header must be application/json');
      return undefined;
    }
    const body = flat(request.body);
    const creds = clientCredentials(request, body);
    const a = state.apps.sageAccounting;
    if (creds.conflicting || creds.clientId !== a.clientId || creds.clientSecret !== a.clientSecret) {
      state.counters.inc('invalidClients', PROVIDER);
      oauthError(
        reply,
        400,
        'invalid_client',
        'Client authentication failed: unknown client_id or wrong client_secret.',
      );
      return undefined;
    }
    return body;
  }

  // Declarations, not consts: the factory returns the plugin above before any statement below it would run.
  function invalidGrant(reply: FastifyReply, description: string) {
    return r.invalidGrant(reply, description);
  }
  function tokenResponse(reply: FastifyReply, g: Grant) {
    return r.sendTokens(reply, accountingTokenBody(state, g));
  }

  async function token(request: FastifyRequest, reply: FastifyReply) {
    const body = checkRequest(request, reply, true);
    if (!body) return reply;
    if (body.grant_type === 'authorization_code') {
      if (!body.code) return r.invalidRequest(reply, 'code is required');
      const code = state.codes.get(body.code);
      if (!code || code.provider !== PROVIDER) return invalidGrant(reply, 'The authorization code is invalid.');
      if (code.usedAt !== null) return invalidGrant(reply, 'The authorization code has already been used.');
      if (state.now() >= code.expiresAt) return invalidGrant(reply, 'The authorization code has expired.');
      if (body.redirect_uri !== code.redirectUri)
        return invalidGrant(reply, 'The redirect_uri does not match the one used in the authorization request.');
      if (code.codeChallenge && !pkceVerifies(code.codeChallenge, code.codeChallengeMethod!, body.code_verifier)) {
        return invalidGrant(reply, 'The code_verifier does not match the code_challenge.');
      }
      code.usedAt = state.now();
      state.counters.inc('codeExchanges', PROVIDER);
      return tokenResponse(reply, state.createGrant(PROVIDER, code.userId, code.scope, null, true));
    }
    if (body.grant_type === 'refresh_token') {
      if (!body.refresh_token) return r.invalidRequest(reply, 'refresh_token is required');
      const found = r.refreshGrant(body.refresh_token);
      if (!found) return invalidGrant(reply, 'The refresh token is invalid.');
      const { rec, g } = found;
      if (g.revokedAt !== null) return invalidGrant(reply, 'The refresh token has been revoked.');
      if (rec.killed === 'rotated') {
        state.counters.inc('reusedRefreshTokens', PROVIDER);
        return invalidGrant(reply, 'The refresh token has already been used.');
      }
      if (state.now() >= rec.expiresAt) return invalidGrant(reply, 'The refresh token has expired.');
      g.refreshCount++;
      state.counters.refreshed(PROVIDER, g.id);
      return tokenResponse(reply, g);
    }
    state.counters.inc('invalidRequests', PROVIDER);
    return oauthError(reply, 400, 'unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
  }

  async function revoke(request: FastifyRequest, reply: FastifyReply) {
    const body = checkRequest(request, reply, false);
    if (!body) return reply;
    if (!body.token) return r.invalidRequest(reply, 'token is required');
    r.revokeIfCurrentRefresh(body.token);
    return reply.send({ success: 'ok' });
  }
}

/** Issues tokens for the grant and shapes them as Sage Accounting's token response. */
export function accountingTokenBody(state: SimulatorState, g: Grant) {
  const t = state.issueTokens(g);
  return {
    access_token: t.accessToken,
    expires_in: t.accessExpiresIn,
    token_type: 'bearer',
    refresh_token: t.refreshToken,
    refresh_token_expires_in: t.refreshExpiresIn,
    scope: g.scope,
    requested_by_id: state.user(g.userId).uuid,
  };
}
