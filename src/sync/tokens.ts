/**
 * Where the sync gets bearer tokens. Production: the connection workflow's token lifecycle (`acquireAccessToken`:
 * a store read while the token is good, the workflow when a refresh is due); tests may plug in another source.
 * A 401 from Sage asks once for a fresh token with `rejectedTokenVersion`.
 */
import { refreshMarginSeconds } from '../connection/machine.js';

export interface AccessToken {
  accessToken: string;
  tokenVersion: number;
  /** ISO expiry; when known, the holder renews ahead of it instead of waiting for Sage's 401. */
  expiresAt?: string;
  /** The token's own life in seconds (the renewal margin is derived from it, as in the workflow). */
  lifetimeSec?: number;
}

export interface TokenSource {
  /** A valid token; with `rejectedTokenVersion`, one newer than that version (a refresh if it is still current). */
  get(opts?: { rejectedTokenVersion?: number }): Promise<AccessToken>;
}

/**
 * A sync run's token holder: keeps the token it was given while it is outside the workflow's refresh margin, and asks
 * the source again once it is inside (the workflow then refreshes, once for every caller), so a long run does not
 * send requests with a token about to lapse and collect 401s. Concurrent page fetches share one renewal. A token
 * without a known expiry (a test source) is kept until Sage rejects it.
 */
export function renewingTokenSource(source: TokenSource, now: () => number = Date.now): TokenSource {
  let held: AccessToken | null = null;
  let pending: Promise<AccessToken> | null = null;
  const stillGood = (t: AccessToken) => {
    if (!t.expiresAt) return true;
    const left = (Date.parse(t.expiresAt) - now()) / 1000;
    const life = t.lifetimeSec ?? left;
    return left > refreshMarginSeconds(life);
  };
  const fetchShared = (opts?: { rejectedTokenVersion?: number }) => {
    pending ??= source
      .get(opts)
      .then((t) => (held = t))
      .finally(() => (pending = null));
    return pending;
  };
  return {
    async get(opts) {
      if (opts?.rejectedTokenVersion !== undefined) {
        // A newer token than the rejected one may already be held (another page renewed it meanwhile).
        if (held && held.tokenVersion > opts.rejectedTokenVersion && stillGood(held)) return held;
        if (held?.tokenVersion === opts.rejectedTokenVersion) held = null;
        if (pending) {
          const t = await pending;
          if (t.tokenVersion > opts.rejectedTokenVersion) return t;
        }
        return fetchShared(opts);
      }
      if (held && stillGood(held)) return held;
      return pending ?? fetchShared();
    },
  };
}
