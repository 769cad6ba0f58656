/**
 * Exit codes of `sage-sync` (documented in the README and `sage-sync --help`):
 *   0 ok · 1 failure (Temporal/MongoDB error, sync run failed, timeout) · 2 usage (bad arguments)
 *   3 not found (no such connection) · 4 reauthorization required (the connection cannot act until the customer consents)
 *   78 configuration error (a bad environment variable; same code as the worker and web server)
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, reauthorizationRequired: 4, config: 78 } as const;

/** Thrown by commands to end with a specific exit code and a one-line message on stderr. */
export class CliExit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'CliExit';
  }
}
