/**
 * Low-level Sage Accounting v3.1 list calls: URL building, the `$items` envelope, and the business pinning check.
 * Every request sends `X-Business` explicitly; every answer must name the same business in its `X-Business` header,
 * because without (or despite) it Sage silently answers for the user's lead business.
 */
import { z } from 'zod';
import type { SageHttp } from '../http.js';
import type { RequestContext } from '../types.js';
import { PartitionMismatchError, SageApiError, SageProtocolError } from '../../errors.js';

/** The list envelope. Sage's own pages disagree on `$itemsPerPage` vs `$items_per_page`; both are accepted. */
export const SageListEnvelope = z
  .object({
    $total: z.number().int().nonnegative().optional(),
    $page: z.number().int().optional(),
    $next: z.string().nullable().optional(),
    $back: z.string().nullable().optional(),
    $itemsPerPage: z.number().int().optional(),
    $items_per_page: z.number().int().optional(),
    $items: z.array(z.unknown()),
  })
  .passthrough();
export type SageListEnvelope = z.infer<typeof SageListEnvelope>;

export function businessHeaders(businessId: string): Record<string, string> {
  return { 'X-Business': businessId };
}

/**
 * Resolves a `$next` path against the API base. `$next` comes without the `/v3.1` prefix (`/contacts?page=2&…`); an
 * absolute URL is accepted only on the API's own origin, so a hostile or broken body cannot send our token elsewhere.
 */
export function resolveApiUrl(apiBase: string, pathOrUrl: string): URL {
  const base = new URL(apiBase.endsWith('/') ? apiBase : `${apiBase}/`);
  if (/^https?:\/\//i.test(pathOrUrl)) {
    const abs = new URL(pathOrUrl);
    if (abs.origin !== base.origin) throw new SageProtocolError(`$next points to another origin (${abs.origin})`);
    return abs;
  }
  let rel = pathOrUrl.replace(/^\/+/, '');
  const basePath = base.pathname.replace(/^\/+|\/+$/g, '');
  // Tolerate a `$next` that does repeat the version prefix (`/v3.1/contacts?...`).
  const version = basePath.split('/').pop();
  if (version && rel.startsWith(`${version}/`)) rel = rel.slice(version.length + 1);
  return new URL(rel, base);
}

export function serverDate(headers: Record<string, string | string[] | undefined>): Date | undefined {
  const raw = headers.date;
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function checkBusiness(headers: Record<string, string | string[] | undefined>, businessId: string): void {
  const echoed = headers['x-business'];
  const echoedId = Array.isArray(echoed) ? echoed[0] : echoed;
  if (echoedId !== undefined && echoedId !== businessId) {
    // Sage answered for another business (the lead one): writing these rows under our partition would corrupt it.
    throw new PartitionMismatchError(
      `Sage answered for business ${echoedId} instead of ${businessId}; refusing to mix partitions`,
    );
  }
}

/** GETs one object pinned to the business; null on 404. */
export async function getOne(http: SageHttp, ctx: RequestContext, url: URL): Promise<unknown | null> {
  try {
    const { body, headers } = await http.getJson<unknown>('sage-accounting', url.toString(), {
      headers: { authorization: `Bearer ${ctx.accessToken}`, ...businessHeaders(ctx.partition.id) },
    });
    checkBusiness(headers, ctx.partition.id);
    return body;
  } catch (err) {
    if (err instanceof SageApiError && err.status === 404) return null;
    throw err;
  }
}

/** GETs one list page pinned to the business and checks the envelope and the echoed business. */
export async function getListPage(
  http: SageHttp,
  ctx: RequestContext,
  url: URL,
): Promise<{ envelope: SageListEnvelope; serverTime?: Date }> {
  const businessId = ctx.partition.id;
  const { body, headers } = await http.getJson<unknown>('sage-accounting', url.toString(), {
    headers: { authorization: `Bearer ${ctx.accessToken}`, ...businessHeaders(businessId) },
  });
  checkBusiness(headers, businessId);
  const parsed = SageListEnvelope.safeParse(body);
  // 502-like: the answer is unusable but may be a proxy hiccup, so it stays retryable.
  if (!parsed.success)
    throw new SageApiError(
      'sage-accounting',
      502,
      url.pathname,
      `unexpected list body: ${parsed.error.issues[0]?.message ?? ''}`,
    );
  return { envelope: parsed.data, serverTime: serverDate(headers) };
}
