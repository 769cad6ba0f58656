/**
 * Connection activities: mint a consent URL (random state from the OS, never from the workflow's seeded PRNG), test the
 * connection (list businesses / sites with the stored token), and mirror the workflow's status into `connections`.
 */
import { writeConnectionMirror } from '../lib/connection-doc.js';
import type { Provider } from '../messages.js';
import { createSageHttp, type SageHttp } from '../providers/http.js';
import { providerFor } from '../providers/registry.js';
import { keyRingFromConfig } from '../lib/crypto.js';
import { mintState } from '../tokens/oauth-state.js';
import { challengeForState, pkceEnabled } from '../tokens/pkce.js';
import { openCandidate, readConsentDoc } from '../tokens/consent-store.js';
import { openTokens } from '../tokens/store.js';
import type { ConnectionMirror, ConnectionTestResult } from '../connection/machine.js';
import type { ActivityDeps } from './deps.js';
import { mappingFailures } from '../errors.js';

export function createConnectionActivities(deps: ActivityDeps) {
  const { config, mongo, log } = deps;
  let http: SageHttp | undefined;
  const sageHttp = () => (http ??= createSageHttp({ maxConcurrency: 10, retries: 2, timeoutMs: 20_000 }));

  return mappingFailures({
    async mintConsent(p: {
      workflowId: string;
      provider: Provider;
      country?: string | null;
      ttlMs: number;
    }): Promise<{ nonce: string; expiresAt: number; url: string }> {
      const minted = mintState(config, p.workflowId, p.ttlMs);
      // PKCE: only the challenge leaves this activity (in the URL); the verifier is re-derived at the exchange.
      const url = providerFor(p.provider).oauth.authorizationUrl(config, {
        state: minted.state,
        ...(p.country ? { country: p.country } : {}),
        ...(pkceEnabled(config, p.provider) ? { codeChallenge: challengeForState(config, minted.state) } : {}),
      });
      return { nonce: minted.nonce, expiresAt: minted.expiresAt, url };
    },

    /**
     * Lists what the consent reaches (`candidate`: the staged re-consent's grant, not the current one) and, for Sage
     * Accounting, which Sage user it belongs to. Never throws: a failed test is a result the workflow records.
     */
    async testConnection(p: {
      workflowId: string;
      provider: Provider;
      edition?: string;
      candidate?: boolean;
    }): Promise<ConnectionTestResult> {
      try {
        const doc = await readConsentDoc(mongo, p.workflowId);
        if (!doc) return { ok: false, available: [], leadBusinessId: null, error: 'no stored tokens' };
        const ring = keyRingFromConfig(config);
        if (p.candidate && !doc.consentCandidate)
          return { ok: false, available: [], leadBusinessId: null, error: 'no staged re-consent' };
        const { accessToken } =
          p.candidate && doc.consentCandidate
            ? openCandidate(ring, p.workflowId, doc.consentCandidate)
            : openTokens(ring, doc);
        const listing = await providerFor(p.provider).listPartitions(sageHttp(), config, accessToken, {
          ...(p.edition ? { edition: p.edition } : {}),
          warn: (err, msg) => log.warn({ err }, msg),
        });
        return {
          ok: true,
          available: listing.partitions,
          leadBusinessId: listing.leadBusinessId,
          ...(listing.sageUserId !== undefined ? { sageUserId: listing.sageUserId } : {}),
        };
      } catch (err) {
        log.warn({ err, workflowId: p.workflowId }, 'connection test failed');
        return { ok: false, available: [], leadBusinessId: null, error: (err as Error).message };
      }
    },

    /** Point upsert of the dashboard mirror (contract §4); leaves the field the partition sync owns (lastSyncAt) alone. */
    async mirrorConnection(m: ConnectionMirror): Promise<void> {
      await writeConnectionMirror(mongo, m);
    },
  });
}
