/**
 * Low-level Sage 200 (UK) calls: base URL per edition, partition headers, and the list body (a bare JSON array; one
 * integrator saw an OData `{ "value": [...] }` wrapper, so both are accepted).
 */
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { SageHttp } from '../http.js';
import type { RequestContext, SyncTarget } from '../types.js';
import { SageApiError } from '../../errors.js';
import { SAGE200_DEFAULT_EDITION } from './editions.js';

/** Azure API Management's subscription key header (contract §2 `SAGE200_SUBSCRIPTION_KEY`); sent when configured. */
export const SUBSCRIPTION_KEY_HEADER = 'ocp-apim-subscription-key';

/** The subscription-key header of every Sage 200 call (API and Sage ID token endpoints), or none without a key. */
export function subscriptionKeyHeaders(subscriptionKey: string | undefined): Record<string, string> {
  return subscriptionKey ? { [SUBSCRIPTION_KEY_HEADER]: subscriptionKey } : {};
}

export function sage200Base(config: Pick<Config, 'SAGE200_API_URL'>, edition: string | undefined): string {
  return `${config.SAGE200_API_URL.replace(/\/+$/, '')}/${edition ?? SAGE200_DEFAULT_EDITION}/accounts/v1`;
}

/** `X-Company` + `X-Site` pin the database; the subscription key is optional (whether Sage still enforces it is unknown). */
export function sage200Headers(target: SyncTarget, subscriptionKey: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { 'X-Company': target.partition.id };
  if (target.partition.siteId) headers['X-Site'] = target.partition.siteId;
  return { ...headers, ...subscriptionKeyHeaders(subscriptionKey) };
}

const ListBody = z.union([
  z.array(z.unknown()),
  z
    .object({ value: z.array(z.unknown()) })
    .passthrough()
    .transform((b) => b.value),
]);

export async function getList(
  http: SageHttp,
  ctx: RequestContext,
  url: URL,
  subscriptionKey: string | undefined,
): Promise<{ items: unknown[]; headers: Record<string, string | string[] | undefined> }> {
  const { body, headers } = await http.getJson<unknown>('sage-200', url.toString(), {
    headers: { authorization: `Bearer ${ctx.accessToken}`, ...sage200Headers(ctx, subscriptionKey) },
  });
  const parsed = ListBody.safeParse(body);
  // 502-like: unusable answer, but possibly a gateway hiccup, so it stays retryable.
  if (!parsed.success)
    throw new SageApiError('sage-200', 502, url.pathname, 'list body is neither an array nor {value:[...]}');
  return { items: parsed.data, headers };
}

/** GETs one object; null on 404. */
export async function getOne(
  http: SageHttp,
  ctx: RequestContext,
  url: URL,
  subscriptionKey: string | undefined,
): Promise<unknown | null> {
  try {
    const { body } = await http.getJson<unknown>('sage-200', url.toString(), {
      headers: { authorization: `Bearer ${ctx.accessToken}`, ...sage200Headers(ctx, subscriptionKey) },
    });
    return body;
  } catch (err) {
    if (err instanceof SageApiError && err.status === 404) return null;
    throw err;
  }
}
