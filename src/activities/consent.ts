/**
 * Consent activities: exchange the authorization code (idempotently: recorded by a hash of the code, see
 * `tokens/consent-store.ts`), and, for a re-consent, promote the staged grant or revoke and drop it.
 */
import { activityInfo, heartbeat } from '@temporalio/activity';
import { mappingFailures, SageOAuthError } from '../errors.js';
import type { Provider } from '../messages.js';
import { oauthFor, type TokenSet } from '../providers/oauth.js';
import { keyRingFromConfig } from '../lib/crypto.js';
import {
  consentExchangeId,
  dropConsentCandidate,
  openCandidate,
  promoteConsentCandidate,
  readConsentDoc,
  stageConsentCandidate,
  storeConsentTokens,
  type ConsentCandidate,
} from '../tokens/consent-store.js';
import { crashPoint } from '../tokens/crash-points.js';
import { pkceEnabled, PkceStateError, verifierForState } from '../tokens/pkce.js';
import { metaOf, type TokenMeta } from '../tokens/store.js';
import { consentStateForCode } from './consent-state.js';
import type { ActivityDeps } from './deps.js';
import { mirrorTokenTimes } from './tokens.js';

/** What the workflow learns from an exchange: non-secret times, the exchange id (a hash), and whether it was staged. */
export interface ExchangeResult extends TokenMeta {
  exchangeId: string;
  /** True: a re-consent stored beside the current tokens (`version` is the one it would get); promote or discard it. */
  staged?: boolean;
}

const candidateMeta = (c: ConsentCandidate, currentVersion: number): TokenMeta => ({
  version: currentVersion + 1,
  accessTokenExpiresAt: c.accessTokenExpiresAt.getTime(),
  accessTokenLifetimeSec: c.accessTokenLifetimeSec,
  refreshTokenExpiresAt: c.refreshTokenExpiresAt?.getTime() ?? null,
  refreshTokenLifetimeSec: c.refreshTokenLifetimeSec,
  obtainedAt: c.obtainedAt.getTime(),
});

export function createConsentActivities(deps: ActivityDeps) {
  const { config, mongo, log } = deps;
  const ring = keyRingFromConfig(config);

  /**
   * PKCE: the verifier of the consent this code came from, re-derived from its state (src/tokens/pkce.ts). Undefined
   * when the provider's consents carry no challenge. Not found / not authentic → a non-retryable failure: without the
   * verifier Sage refuses the code anyway.
   */
  async function codeVerifier(p: {
    workflowId: string;
    provider: Provider;
    code: string;
  }): Promise<string | undefined> {
    if (!pkceEnabled(config, p.provider)) return undefined;
    const fail = (message: string) => SageOAuthError.local('pkce_state', 'authorization_failed', message);
    const { workflowExecution } = activityInfo();
    if (!workflowExecution) throw fail('the code exchange runs outside a workflow: cannot derive the PKCE verifier');
    const state = await consentStateForCode(deps.client, workflowExecution, p.code);
    if (!state)
      throw fail('no completeAuthorization update with this code in the run: cannot derive the PKCE verifier');
    try {
      return verifierForState(config, state);
    } catch (err) {
      if (err instanceof PkceStateError) throw fail(err.message);
      throw err;
    }
  }

  return mappingFailures({
    /**
     * Exchanges a single-use code. `stage`: a re-consent, stored beside the current tokens until promoted. A retry that
     * finds its own exchange (by the code's hash) in the store returns it without calling Sage.
     */
    async exchangeAuthorizationCode(p: {
      workflowId: string;
      tenantId: string;
      provider: Provider;
      code: string;
      stage?: boolean;
    }): Promise<ExchangeResult> {
      const exchangeId = consentExchangeId(p.workflowId, p.code);
      const existing = await readConsentDoc(mongo, p.workflowId);
      if (existing?.consentExchangeId === exchangeId) {
        log.info(
          { workflowId: p.workflowId, version: existing.version },
          'authorization code already exchanged; returning the stored version',
        );
        return { ...metaOf(existing), exchangeId };
      }
      if (existing?.consentCandidate?.exchangeId === exchangeId) {
        log.info({ workflowId: p.workflowId }, 'authorization code already exchanged; returning the staged re-consent');
        return { ...candidateMeta(existing.consentCandidate, existing.version), exchangeId, staged: true };
      }
      const verifier = await codeVerifier(p);
      heartbeat();
      const beat = setInterval(() => heartbeat(), 2_000);
      let tokens: TokenSet;
      try {
        tokens = await oauthFor(p.provider).exchangeCode(config, {
          code: p.code,
          ...(verifier ? { codeVerifier: verifier } : {}),
        });
      } catch (err) {
        if (err instanceof SageOAuthError && err.error === 'invalid_grant')
          throw err.withReason('authorization_code_invalid');
        throw err;
      } finally {
        clearInterval(beat);
      }
      if (p.stage && existing) {
        const c = await stageConsentCandidate(mongo, ring, { id: p.workflowId, tokens, exchangeId });
        crashPoint(config, 'exchange:after-store');
        log.info(
          { workflowId: p.workflowId },
          'authorization code exchanged; re-consent staged until its partitions are checked',
        );
        return { ...candidateMeta(c, existing.version), exchangeId, staged: true };
      }
      const doc = await storeConsentTokens(mongo, ring, {
        id: p.workflowId,
        tenantId: p.tenantId,
        provider: p.provider,
        tokens,
        exchangeId,
      });
      crashPoint(config, 'exchange:after-store');
      await mirrorTokenTimes(deps, doc);
      log.info({ workflowId: p.workflowId, version: doc.version }, 'authorization code exchanged');
      return { ...metaOf(doc), exchangeId };
    },

    /** The re-consent passed its partitions check: its tokens become the next current version. Idempotent. */
    async promoteConsentCandidate(p: { workflowId: string; exchangeId: string }): Promise<TokenMeta> {
      const doc = await promoteConsentCandidate(mongo, ring, { id: p.workflowId, exchangeId: p.exchangeId });
      if (!doc) throw SageOAuthError.local('tokens_missing', 'tokens_missing', 'the staged re-consent is gone');
      await mirrorTokenTimes(deps, doc);
      log.info({ workflowId: p.workflowId, version: doc.version }, 're-consent promoted to the current tokens');
      return metaOf(doc);
    },

    /** The re-consent was refused: revoke its grant at Sage (an already dead grant counts), then drop it. Idempotent. */
    async discardConsentCandidate(p: {
      workflowId: string;
      provider: Provider;
      exchangeId: string;
    }): Promise<'revoked' | 'nothing_to_revoke' | 'already_invalid'> {
      const doc = await readConsentDoc(mongo, p.workflowId);
      const c = doc?.consentCandidate;
      if (!c || c.exchangeId !== p.exchangeId) return 'nothing_to_revoke';
      const { refreshToken, accessToken } = openCandidate(ring, p.workflowId, c);
      let outcome: 'revoked' | 'already_invalid' = 'revoked';
      try {
        await oauthFor(p.provider).revoke(config, refreshToken ?? accessToken);
      } catch (err) {
        if (!(err instanceof SageOAuthError && err.error === 'invalid_grant')) throw err;
        outcome = 'already_invalid';
      }
      await dropConsentCandidate(mongo, { id: p.workflowId, exchangeId: p.exchangeId });
      log.info({ workflowId: p.workflowId, outcome }, 'refused re-consent revoked at Sage and dropped');
      return outcome;
    },
  });
}
