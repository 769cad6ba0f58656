/**
 * Where the sync gets bearer tokens. Production: the connection workflow's token lifecycle (`acquireAccessToken`);
 * tests may plug in another source. A 401 from Sage asks once for a fresh token with `rejectedTokenVersion`.
 */
export interface AccessToken {
  accessToken: string;
  tokenVersion: number;
}

export interface TokenSource {
  /** A valid token; with `rejectedTokenVersion`, one newer than that version (a refresh if it is still current). */
  get(opts?: { rejectedTokenVersion?: number }): Promise<AccessToken>;
}
