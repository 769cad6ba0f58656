import { createHash } from 'node:crypto';

export function pkceMethodValid(
  challenge: string | undefined,
  method: string | undefined,
): { ok: true; method: 'S256' | 'plain' | null } | { ok: false; reason: string } {
  if (challenge === undefined)
    return method === undefined
      ? { ok: true, method: null }
      : { ok: false, reason: 'code_challenge_method without code_challenge' };
  if (!/^[A-Za-z0-9\-._~]{43,128}$/.test(challenge))
    return { ok: false, reason: 'code_challenge must be 43-128 characters of [A-Za-z0-9-._~]' };
  const m = method ?? 'plain';
  if (m !== 'S256' && m !== 'plain') return { ok: false, reason: 'code_challenge_method must be S256 or plain' };
  return { ok: true, method: m };
}

export function pkceVerifies(challenge: string, method: 'S256' | 'plain', verifier: string | undefined): boolean {
  if (!verifier) return false;
  const derived = method === 'plain' ? verifier : createHash('sha256').update(verifier).digest('base64url');
  return derived === challenge;
}
