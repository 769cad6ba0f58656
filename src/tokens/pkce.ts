/**
 * PKCE (RFC 7636, S256) without storing a verifier anywhere: the code_verifier of a consent is derived from its OAuth
 * `state`, verifier = base64url(HMAC-SHA256(K_pkce, workflowId "\n" nonce)), 43 characters of [A-Za-z0-9_-], where
 * K_pkce is HKDF-SHA256 of the master key that MACs the state (`KEY_PURPOSES.pkceVerifier`, its own derived key: it
 * never seals anything and no other purpose uses it). The consent minting activity puts only the challenge,
 * base64url(SHA-256(verifier)), in the authorize URL; the code-exchange activity re-derives the verifier from the state
 * that came back and sends it as `code_verifier`. So the verifier exists only inside those two activities and the token
 * request: never in workflow input, results or state, history, MongoDB or logs.
 */
import { createHash, createHmac } from 'node:crypto';
import type { Config } from '../config.js';
import { deriveKey } from '../lib/crypto.js';
import type { Provider } from '../messages.js';
import { providerFor } from '../providers/registry.js';
import { stateKey } from './oauth-state.js';

type KeyConfig = Pick<Config, 'encryptionKey' | 'oldEncryptionKeys'>;

/** Whether consents for this provider use PKCE (per-provider setting: SAGE_ACCOUNTING_PKCE / SAGE200_PKCE). */
export function pkceEnabled(
  config: Pick<Config, 'SAGE_ACCOUNTING_PKCE' | 'SAGE200_PKCE'>,
  provider: Provider,
): boolean {
  return providerFor(provider).pkce(config);
}

/** The verifier for one consent state, from the master key that MACs it. */
export function deriveVerifier(masterKey: Buffer, workflowId: string, nonce: string): string {
  return createHmac('sha256', deriveKey(masterKey, 'pkceVerifier'))
    .update(`${workflowId}\n${nonce}`)
    .digest('base64url');
}

/** RFC 7636 §4.2 S256: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))). */
export function s256Challenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

export class PkceStateError extends Error {
  override name = 'PkceStateError';
}

/** The verifier for an authentic state (expiry ignored: the exchange may run after the state's deadline). */
export function verifierForState(config: KeyConfig, state: string): string {
  const k = stateKey(config, state);
  if (k === 'malformed' || k === 'forged') throw new PkceStateError(`cannot derive a PKCE verifier: the state is ${k}`);
  return deriveVerifier(k.key, k.workflowId, k.nonce);
}

/** The challenge for a state just minted (same derivation as the exchange's). */
export function challengeForState(config: KeyConfig, state: string): string {
  return s256Challenge(verifierForState(config, state));
}
