/**
 * Sage ID OAuth for Sage 200 (id.sage.com: `/authorize`, `/oauth/token`, `/oauth/revoke`), served under `/sage200`.
 * Sage ID runs on Auth0, so where Sage documents nothing the simulator answers as Auth0 does: `invalid_grant` is HTTP 403
 * ("Unknown or invalid refresh token."), a refresh token is only issued with `offline_access`, rotation on every refresh
 * with reuse detection (presenting a rotated-away refresh token revokes the whole grant), JSON or form bodies accepted.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
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

const PROVIDER = 'sage-200' as const;

export function sage200OAuth(state: SimulatorState) {
  const r = oauthReplies(state, PROVIDER, { invalidGrantStatus: 403 });
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get('/authorize', authorize);
    app.post('/oauth/token', token);
    app.post('/oauth/revoke', revoke);
  };

  async function authorize(request: FastifyRequest, reply: FastifyReply) {
    const q = flat(request.query);
    const a = state.apps.sage200;
    if (q.client_id !== a.clientId) {
      return r.refusePage(reply, 'Unknown client', 'The client_id is not registered with Sage ID.');
    }
    if (q.redirect_uri !== a.redirectUri) {
      return r.refusePage(
        reply,
        'Callback URL mismatch',
        'The provided redirect_uri is not in the list of allowed callback URLs.',
      );
    }
    const back = r.redirectError(reply, a.redirectUri, q.state);
    if (q.response_type !== 'code')
      return back('unsupported_response_type', `Unsupported response type: ${q.response_type ?? '(none)'}`);
    if (!q.state) return back('invalid_request', 'state is required');
    // A wrong audience is refused outright; no audience at all yields tokens the Sage 200 API does not accept.
    if (q.audience !== undefined && q.audience !== a.audience)
      return back('access_denied', `Service not found: ${q.audience}`);
    const pkce = pkceMethodValid(q.code_challenge, q.code_challenge_method);
    if (!pkce.ok) return back('invalid_request', pkce.reason);
    const scope = (q.scope ?? '').split(' ').filter(Boolean);
    const consent = state.takeConsent(PROVIDER);
    if (consent.deny) return r.consentDenied(reply, a.redirectUri, consent.deny, q.state);
    const code = state.issueCode({
      provider: PROVIDER,
      clientId: a.clientId,
      redirectUri: q.redirect_uri,
      userId: consent.user!.id,
      scope: scope.join(' '),
      audience: q.audience ?? null,
      offline: scope.includes('offline_access'),
      codeChallenge: q.code_challenge ?? null,
      codeChallengeMethod: pkce.method,
    });
    state.counters.inc('consents', PROVIDER);
    return reply.redirect(redirectUrl(a.redirectUri, { code: code.code, state: q.state }), 302);
  }

  function readBody(request: FastifyRequest, reply: FastifyReply): Params | undefined {
    const ct = (request.headers['content-type'] ?? '').toLowerCase();
    if (!isFormEncoded(request) && !ct.startsWith('application/json')) {
      r.invalidRequest(reply, 'Content-Type must be application/x-www-form-urlencoded or application/json');
      return undefined;
    }
    const body = flat(request.body);
    const creds = clientCredentials(request, body);
    const a = state.apps.sage200;
    if (creds.conflicting || creds.clientId !== a.clientId || creds.clientSecret !== a.clientSecret) {
      state.counters.inc('invalidClients', PROVIDER);
      oauthError(reply, 401, 'invalid_client', 'Client authentication failed.');
      return undefined;
    }
    return body;
  }

  // Declarations, not consts: the factory returns the plugin above before any statement below it would run.
  function invalidGrant(reply: FastifyReply, description: string) {
    return r.invalidGrant(reply, description);
  }
  function tokenResponse(reply: FastifyReply, g: Grant) {
    return r.sendTokens(reply, sage200TokenBody(state, g));
  }

  async function token(request: FastifyRequest, reply: FastifyReply) {
    const body = readBody(request, reply);
    if (!body) return reply;
    if (body.grant_type === 'authorization_code') {
      if (!body.code) return r.invalidRequest(reply, 'Missing required parameter: code');
      const code = state.codes.get(body.code);
      if (!code || code.provider !== PROVIDER || code.usedAt !== null || state.now() >= code.expiresAt)
        return invalidGrant(reply, 'Invalid authorization code');
      if (body.redirect_uri !== code.redirectUri)
        return invalidGrant(
          reply,
          'Invalid redirect_uri: it does not match the one used to obtain the authorization code.',
        );
      if (code.codeChallenge && !pkceVerifies(code.codeChallenge, code.codeChallengeMethod!, body.code_verifier)) {
        return invalidGrant(reply, 'Failed to verify code verifier');
      }
      code.usedAt = state.now();
      state.counters.inc('codeExchanges', PROVIDER);
      return tokenResponse(reply, state.createGrant(PROVIDER, code.userId, code.scope, code.audience, code.offline));
    }
    if (body.grant_type === 'refresh_token') {
      if (!body.refresh_token) return r.invalidRequest(reply, 'Missing required parameter: refresh_token');
      const found = r.refreshGrant(body.refresh_token);
      if (!found) return invalidGrant(reply, 'Unknown or invalid refresh token.');
      const { rec, g } = found;
      if (rec.killed === 'rotated') {
        state.counters.inc('reusedRefreshTokens', PROVIDER);
        // Auth0 reuse detection: a rotated-away token coming back means it leaked; the whole family dies.
        if (state.settings.sage200.revokeGrantOnRefreshReuse) state.revokeGrant(g, 'refresh_token_reuse');
        return invalidGrant(reply, 'Unknown or invalid refresh token.');
      }
      if (g.revokedAt !== null || state.now() >= rec.expiresAt)
        return invalidGrant(reply, 'Unknown or invalid refresh token.');
      g.refreshCount++;
      state.counters.refreshed(PROVIDER, g.id);
      return tokenResponse(reply, g);
    }
    state.counters.inc('invalidRequests', PROVIDER);
    return oauthError(reply, 403, 'unsupported_grant_type', `Unsupported grant type: ${body.grant_type ?? '(none)'}`);
  }

  async function revoke(request: FastifyRequest, reply: FastifyReply) {
    const body = readBody(request, reply);
    if (!body) return reply;
    if (!body.token) return r.invalidRequest(reply, 'Missing required parameter: token');
    r.revokeIfCurrentRefresh(body.token);
    // Auth0 answers 200 with an empty body, also for tokens it does not know.
    return reply.code(200).send();
  }
}

function idToken(state: SimulatorState, g: Grant): string {
  const u = state.user(g.userId);
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(state.now() / 1000);
  const t = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc({ iss: 'https://id.sage.com/', sub: `auth0|${u.uuid}`, aud: state.apps.sage200.clientId, email: u.email, iat: now, exp: now + 36000 })}.${randomBytes(256).toString('base64url')}`;
  state.issuedTokens.push(t);
  return t;
}

/** Issues tokens for the grant and shapes them as Sage ID's token response (no refresh token without offline_access). */
export function sage200TokenBody(state: SimulatorState, g: Grant) {
  const t = state.issueTokens(g);
  return {
    access_token: t.accessToken,
    ...(t.refreshToken ? { refresh_token: t.refreshToken } : {}),
    id_token: idToken(state, g),
    scope: g.scope,
    expires_in: t.accessExpiresIn,
    token_type: 'Bearer',
  };
}
