/**
 * Sage 200 OAuth via Sage ID. Quirks pinned here: the consent URL needs `audience` and `offline_access` (no refresh token
 * without it); `expires_in` is read from each response (lifetime undocumented); the refresh-token lifetime comes from
 * `refresh_token_expires_in` when given, else 90 days (the maximum Sage's credential form offers); when a refresh answer
 * carries no new refresh token the old one stays valid (rotation is configurable on Sage ID / Auth0).
 */
import type { Config } from '../../config.js';
import { addPkceChallenge, clientCredentials, postForm, toTokenSet, type ProviderOAuth } from '../oauth.js';
import { subscriptionKeyHeaders } from './api.js';

export const SAGE200_DEFAULT_REFRESH_LIFETIME_SEC = 90 * 24 * 3600;
export const SAGE200_SCOPE = 'openid profile email offline_access';

const subscriptionHeader = (config: Config) => subscriptionKeyHeaders(config.SAGE200_SUBSCRIPTION_KEY);
const credentials = (config: Config) =>
  clientCredentials('sage-200', 'SAGE200', config.SAGE200_CLIENT_ID, config.SAGE200_CLIENT_SECRET);

export const sage200OAuth: ProviderOAuth = {
  provider: 'sage-200',
  authorizationUrl(config: Config, p) {
    const { clientId } = credentials(config);
    const url = new URL(config.SAGE200_AUTH_URL);
    url.searchParams.set('audience', config.SAGE200_AUDIENCE);
    url.searchParams.set('client_id', clientId);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('redirect_uri', config.redirectUri);
    url.searchParams.set('scope', SAGE200_SCOPE);
    url.searchParams.set('state', p.state);
    addPkceChallenge(url, p.codeChallenge);
    return url.toString();
  },
  async exchangeCode(config, p) {
    const { clientId, clientSecret } = credentials(config);
    const body = await postForm(
      'sage-200',
      config.SAGE200_TOKEN_URL,
      {
        grant_type: 'authorization_code',
        client_id: clientId,
        client_secret: clientSecret,
        code: p.code,
        redirect_uri: config.redirectUri,
        ...(p.codeVerifier ? { code_verifier: p.codeVerifier } : {}),
      },
      subscriptionHeader(config),
    );
    return toTokenSet('sage-200', body, SAGE200_DEFAULT_REFRESH_LIFETIME_SEC);
  },
  async refresh(config, refreshToken, opts = {}) {
    const { clientId, clientSecret } = credentials(config);
    const body = await postForm(
      'sage-200',
      config.SAGE200_TOKEN_URL,
      { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, client_secret: clientSecret },
      subscriptionHeader(config),
      opts,
    );
    return toTokenSet('sage-200', body, SAGE200_DEFAULT_REFRESH_LIFETIME_SEC);
  },
  async revoke(config, refreshToken) {
    const { clientId, clientSecret } = credentials(config);
    await postForm(
      'sage-200',
      config.SAGE200_REVOKE_URL,
      { token: refreshToken, client_id: clientId, client_secret: clientSecret },
      subscriptionHeader(config),
    );
  },
};
