/**
 * AES-256-GCM with a key id, used by the token store and the Temporal payload codec, each with its own key derived from
 * `TOKEN_ENCRYPTION_KEY` (HKDF-SHA256, see `derivedKeyRing`). Layout of a sealed value: 12-byte IV | ciphertext |
 * 16-byte tag. The key id travels beside it so keys can rotate without losing old data.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { Config } from '../config.js';

export interface KeyRing {
  current: { id: string; key: Buffer };
  /** Every key that may decrypt, current included. */
  byId: Map<string, Buffer>;
}

export function keyRing(current: { id: string; key: Buffer }, old: { id: string; key: Buffer }[] = []): KeyRing {
  const byId = new Map<string, Buffer>(old.map((k) => [k.id, k.key]));
  byId.set(current.id, current.key);
  return { current, byId };
}

/** What each derived key is for: the HKDF `info`, and the suffix of its key id. */
export const KEY_PURPOSES = {
  tokenStore: { info: 'sage-tenant-sync/token-store/v1', suffix: 'ts1' },
  payloadCodec: { info: 'sage-tenant-sync/payload-codec/v1', suffix: 'pc1' },
  /** The PKCE code_verifier's HMAC key (src/tokens/pkce.ts): never seals anything, only derives verifiers. */
  pkceVerifier: { info: 'sage-tenant-sync/pkce-verifier/v1', suffix: 'pk1' },
} as const;
export type KeyPurpose = keyof typeof KEY_PURPOSES;

export function deriveKey(master: Buffer, purpose: KeyPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), KEY_PURPOSES[purpose].info, 32));
}

/**
 * The ring for one purpose: seals with the key derived from the current master key (id `<master id>.<suffix>`), opens
 * with that, with the keys derived from older master keys, and with the raw master keys themselves under their own
 * ids, because everything sealed before keys were derived (stored tokens, saved histories) used the raw key.
 */
export function derivedKeyRing(
  purpose: KeyPurpose,
  current: { id: string; key: Buffer },
  old: { id: string; key: Buffer }[] = [],
): KeyRing {
  const derived = (k: { id: string; key: Buffer }) => ({
    id: `${k.id}.${KEY_PURPOSES[purpose].suffix}`,
    key: deriveKey(k.key, purpose),
  });
  return keyRing(derived(current), [...old.flatMap((k) => [k, derived(k)]), current]);
}

export type KeyConfig = Pick<Config, 'encryptionKey' | 'oldEncryptionKeys'>;

/** The token store's keys (sealed tokens at rest, and refresh answers carried in heartbeat details). */
export function keyRingFromConfig(config: KeyConfig): KeyRing {
  return derivedKeyRing('tokenStore', config.encryptionKey, config.oldEncryptionKeys);
}

/** The payload codec's keys (worker, clients, replayer, codec server): separate from the token store's. */
export function codecKeyRingFromConfig(config: KeyConfig): KeyRing {
  return derivedKeyRing('payloadCodec', config.encryptionKey, config.oldEncryptionKeys);
}

export class DecryptionError extends Error {
  override name = 'DecryptionError';
}

export function seal(ring: KeyRing, plaintext: Buffer, aad?: Buffer): { keyId: string; data: Buffer } {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', ring.current.key, iv);
  if (aad) cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId: ring.current.id, data: Buffer.concat([iv, body, cipher.getAuthTag()]) };
}

export function open(ring: KeyRing, keyId: string, data: Buffer, aad?: Buffer): Buffer {
  const key = ring.byId.get(keyId);
  if (!key)
    throw new DecryptionError(`no key with id ${keyId} is configured (set TOKEN_ENCRYPTION_OLD_KEYS while rotating)`);
  if (data.length < 28) throw new DecryptionError('sealed value too short');
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
  if (aad) decipher.setAAD(aad);
  decipher.setAuthTag(data.subarray(data.length - 16));
  try {
    return Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
  } catch {
    throw new DecryptionError('authentication failed: wrong key or tampered data');
  }
}
