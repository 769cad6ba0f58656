/**
 * Connection test for Sage 200: `GET {base}/sites` lists every site/company the Sage ID user reaches. The partition id
 * is the `company_id` as a string (contract §7); the site id rides beside it and is sent as `X-Site` on every call. Sage
 * answers a bare array (Nango also accepts a single object; an OData `{value}` wrapper is tolerated too).
 */
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Partition } from '../../messages.js';
import type { SageHttp } from '../http.js';
import { sage200Base, subscriptionKeyHeaders } from './api.js';
import { otherSage200Edition, SAGE200_DEFAULT_EDITION } from './editions.js';
import { SageApiError } from '../../errors.js';

const Site = z
  .object({
    company_id: z.union([z.number(), z.string()]),
    company_name: z.string().optional(),
    site_id: z.string().optional(),
    site_name: z.string().optional(),
  })
  .loose();
const SitesBody = z.union([
  z.array(z.unknown()),
  z
    .object({ value: z.array(z.unknown()) })
    .loose()
    .transform((b) => b.value),
  Site.transform((s) => [s]),
]);

export async function listSage200Sites(
  http: SageHttp,
  config: Pick<Config, 'SAGE200_API_URL' | 'SAGE200_SUBSCRIPTION_KEY'>,
  accessToken: string,
  edition: string | undefined,
): Promise<Partition[]> {
  const headers = {
    authorization: `Bearer ${accessToken}`,
    ...subscriptionKeyHeaders(config.SAGE200_SUBSCRIPTION_KEY),
  };
  const url = `${sage200Base(config, edition)}/sites`;
  let body: unknown;
  try {
    ({ body } = await http.getJson<unknown>('sage-200', url, { headers }));
  } catch (err) {
    // `/sites` needs no site or company, so a 401 here with a token Sage ID just issued means this edition does not know
    // the user: say so, instead of leaving a bare 401 that reads like a token problem.
    if (err instanceof SageApiError && err.status === 401 && !/subscription key/i.test(err.detail)) {
      const ed = edition ?? SAGE200_DEFAULT_EDITION;
      throw new SageApiError(
        'sage-200',
        401,
        err.path,
        `${err.detail ? `${err.detail} ` : ''}(/sites refused under edition ${ed}: with a fresh token this means the tenant's sites are on the other edition, ${otherSage200Edition(ed)})`,
        err.retryAfterMs,
      );
    }
    throw err;
  }
  const items = SitesBody.parse(body);
  const out: Partition[] = [];
  for (const item of items) {
    const s = Site.safeParse(item);
    if (!s.success) continue;
    out.push({
      id: String(s.data.company_id),
      name: s.data.company_name ?? s.data.site_name ?? String(s.data.company_id),
      ...(s.data.site_id ? { siteId: s.data.site_id } : {}),
    });
  }
  return out;
}
