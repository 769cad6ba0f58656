/**
 * The Sage 200 editions (the `{edition}` segment of the API base URL, contract §2) and the default, in one place.
 * Sandbox-safe (no imports): the workflow input schema (`messages.ts`) uses it too.
 */
export const SAGE200_EDITIONS = ['sage200extra', 'sage200'] as const;
export type Sage200Edition = (typeof SAGE200_EDITIONS)[number];
/** Professional / Extra Online: what a connection without an edition uses. */
export const SAGE200_DEFAULT_EDITION: Sage200Edition = 'sage200extra';
/** The edition a tenant's sites are on when they are not on `edition`. */
export const otherSage200Edition = (edition: string): Sage200Edition =>
  edition === 'sage200' ? 'sage200extra' : 'sage200';
