/**
 * Connection test for Sage 200: `GET {base}/sites` lists every site/company the Sage ID user reaches. The partition id
 * is the `company_id` as a string (contract §7); the site id rides beside it and is sent as `X-Site` on every call. Sage
 * answers a bare array (Nango also accepts a single object; an OData `{value}` wrapper is tolerated too).
 */
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Partition } from '../../messages.js';
import type { SageHttp } from '../http.js';
import { sage200Base } from './api.js';

const Site = z
  .object({
    company_id: z.union([z.number(), z.string()]),
    company_name: z.string().optional(),
    site_id: z.string().optional(),
    site_name: z.string().optional(),
  })
  .loose();
const SitesBody = z.union([z.array(z.unknown()), z.object({ value: z.array(z.unknown()) }).loose().transform((b) => b.value), Site.transform((s) => [s])]);

export async function listSage200Sites(
  http: SageHttp,
  config: Pick<Config, 'SAGE200_API_URL' | 'SAGE200_SUBSCRIPTION_KEY'>,
  accessToken: string,
  edition: string | undefined,
): Promise<Partition[]> {
  const headers: Record<string, string> = { authorization: `Bearer ${accessToken}` };
  if (config.SAGE200_SUBSCRIPTION_KEY) headers['ocp-apim-subscription-key'] = config.SAGE200_SUBSCRIPTION_KEY;
  const { body } = await http.getJson<unknown>('sage-200', `${sage200Base(config, edition)}/sites`, { headers });
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
