/**
 * The OAuth `state`: unguessable (128 random bits from the OS), bound to one connection workflow, expiring, single-use.
 * Format `<base64url(workflowId)>.<nonce>.<expiry, unix seconds base36>.<mac>`, where the mac is HMAC-SHA256 (truncated
 * to 128 bits) over the first three parts with a key derived from TOKEN_ENCRYPTION_KEY. The web callback checks the mac
 * and the expiry before it touches any workflow (a forged or expired state gets 400 at once); the workflow's
 * synchronous update validator then checks that the nonce is one it issued and has not used yet.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.js';

type KeyConfig = Pick<Config, 'encryptionKey' | 'oldEncryptionKeys'>;

function macKey(key: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'sage-sync oauth state v1', 32));
}

function mac(key: Buffer, body: string): string {
  return createHmac('sha256', macKey(key)).update(body).digest().subarray(0, 16).toString('base64url');
}

export interface MintedState {
  state: string;
  nonce: string;
  expiresAt: number;
}

export function mintState(config: KeyConfig, workflowId: string, ttlMs: number, now = Date.now()): MintedState {
  const nonce = randomBytes(16).toString('base64url');
  const expiresAt = now + ttlMs;
  const body = `${Buffer.from(workflowId).toString('base64url')}.${nonce}.${Math.floor(expiresAt / 1000).toString(36)}`;
  return {
    state: `${body}.${mac(config.encryptionKey.key, body)}`,
    nonce,
    expiresAt: Math.floor(expiresAt / 1000) * 1000,
  };
}

export type VerifiedState =
  | { ok: true; workflowId: string; nonce: string; expiresAt: number }
  | { ok: false; reason: 'malformed' | 'forged' | 'expired' };

/**
 * The master key (current or old) whose MAC authenticates `state`, ignoring expiry, with the state's parts; null when
 * malformed or forged. PKCE derives the state's code_verifier from the same key, so a key rotated between consent and
 * code exchange still gives the verifier the consent URL was minted with.
 */
export function stateKey(
  config: KeyConfig,
  state: string,
): { key: Buffer; workflowId: string; nonce: string; exp: string } | 'malformed' | 'forged' {
  const parts = state.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return 'malformed';
  const [wf, nonce, exp, got] = parts as [string, string, string, string];
  const body = `${wf}.${nonce}.${exp}`;
  const given = Buffer.from(got, 'base64url');
  const keys = [config.encryptionKey.key, ...config.oldEncryptionKeys.map((k) => k.key)];
  const key = keys.find((k) => {
    const want = Buffer.from(mac(k, body), 'base64url');
    return want.length === given.length && timingSafeEqual(want, given);
  });
  if (!key) return 'forged';
  return { key, workflowId: Buffer.from(wf, 'base64url').toString('utf8'), nonce, exp };
}

export function verifyState(config: KeyConfig, state: string, now = Date.now()): VerifiedState {
  const k = stateKey(config, state);
  if (k === 'malformed' || k === 'forged') return { ok: false, reason: k };
  const { workflowId, nonce, exp } = k;
  const expiresAt = parseInt(exp, 36) * 1000;
  if (!Number.isFinite(expiresAt) || expiresAt <= now) return { ok: false, reason: 'expired' };
  return { ok: true, workflowId, nonce, expiresAt };
}
