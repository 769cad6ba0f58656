/**
 * Sage Accounting (v3.1) OAuth. Quirks pinned here: the consent URL already carries `?filter=apiv3.1`; the code comes
 * back with a region prefix (`GB/…`) and is sent as is; credentials go in the form body as in Sage's examples; access
 * tokens live 300 s and every refresh rotates a single-use refresh token valid ~31 days (read from each response).
 */
import type { Config } from '../../config.js';
import { addPkceChallenge, clientCredentials, postForm, toTokenSet, type ProviderOAuth } from '../oauth.js';

/** Used only when a response lacks `refresh_token_expires_in` (Sage documents 31 days). */
export const SAGE_ACCOUNTING_DEFAULT_REFRESH_LIFETIME_SEC = 31 * 24 * 3600;

const credentials = (config: Config) =>
  clientCredentials(
    'sage-accounting',
    'SAGE_ACCOUNTING',
    config.SAGE_ACCOUNTING_CLIENT_ID,
    config.SAGE_ACCOUNTING_CLIENT_SECRET,
  );

export const sageAccountingOAuth: ProviderOAuth = {
  provider: 'sage-accounting',
  authorizationUrl(config: Config, p) {
    const { clientId } = credentials(config);
    const url = new URL(config.SAGE_ACCOUNTING_AUTH_URL);
    url.searchParams.set('client_id', clientId);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('redirect_uri', config.redirectUri);
    url.searchParams.set('scope', config.SAGE_ACCOUNTING_SCOPE);
    url.searchParams.set('state', p.state);
    if (p.country) url.searchParams.set('country', p.country.toLowerCase());
    addPkceChallenge(url, p.codeChallenge);
    return url.toString();
  },
  async exchangeCode(config, p) {
    const { clientId, clientSecret } = credentials(config);
    const body = await postForm('sage-accounting', config.SAGE_ACCOUNTING_TOKEN_URL, {
      client_id: clientId,
      client_secret: clientSecret,
      code: p.code,
      grant_type: 'authorization_code',
      // Byte-identical to the one in the consent URL, or Sage answers invalid_grant.
      redirect_uri: config.redirectUri,
      ...(p.codeVerifier ? { code_verifier: p.codeVerifier } : {}),
    });
    return toTokenSet('sage-accounting', body, SAGE_ACCOUNTING_DEFAULT_REFRESH_LIFETIME_SEC);
  },
  async refresh(config, refreshToken, opts = {}) {
    const { clientId, clientSecret } = credentials(config);
    const body = await postForm(
      'sage-accounting',
      config.SAGE_ACCOUNTING_TOKEN_URL,
      {
        client_id: clientId,
        client_secret: clientSecret,
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
      },
      {},
      opts,
    );
    return toTokenSet('sage-accounting', body, SAGE_ACCOUNTING_DEFAULT_REFRESH_LIFETIME_SEC);
  },
  async revoke(config, refreshToken) {
    const { clientId, clientSecret } = credentials(config);
    await postForm('sage-accounting', config.SAGE_ACCOUNTING_REVOKE_URL, {
      client_id: clientId,
      client_secret: clientSecret,
      token: refreshToken,
    });
  },
};
