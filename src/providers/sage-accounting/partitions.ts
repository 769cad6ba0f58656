/**
 * Connection test for Sage Accounting: which businesses the consenting user reaches (`GET /businesses`, following
 * `$next`) and which is the lead business (`GET /businesses/lead`, the one Sage uses when `X-Business` is missing; it
 * can change, so later checks compare it). `/businesses` needs no `X-Business` header.
 */
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Partition } from '../../messages.js';
import type { SageHttp } from '../http.js';
import { resolveApiUrl, SageListEnvelope } from './api.js';

const Business = z
  .object({ id: z.string().min(1), displayed_as: z.string().optional(), name: z.string().optional() })
  .loose();

export async function listSageAccountingBusinesses(
  http: SageHttp,
  config: Pick<Config, 'SAGE_ACCOUNTING_API_URL'>,
  accessToken: string,
): Promise<{ businesses: Partition[]; leadBusinessId: string | null }> {
  const headers = { authorization: `Bearer ${accessToken}` };
  const businesses: Partition[] = [];
  // No parameters: Sage's user/business spec defines none for `/businesses`, and its own example answers every business
  // in one page (`$items_per_page: 2147483647`); `$next` is still followed should it ever page.
  let next: string | null = '/businesses';
  for (let page = 0; next && page < 50; page++) {
    const { body } = await http.getJson<unknown>(
      'sage-accounting',
      resolveApiUrl(config.SAGE_ACCOUNTING_API_URL, next).toString(),
      { headers },
    );
    const env = SageListEnvelope.parse(body);
    for (const item of env.$items) {
      const b = Business.safeParse(item);
      if (b.success) businesses.push({ id: b.data.id, name: b.data.name ?? b.data.displayed_as ?? b.data.id });
    }
    next = env.$next ?? null;
  }
  let leadBusinessId: string | null = null;
  try {
    const { body } = await http.getJson<unknown>(
      'sage-accounting',
      resolveApiUrl(config.SAGE_ACCOUNTING_API_URL, '/businesses/lead').toString(),
      { headers },
    );
    leadBusinessId = Business.safeParse(body).data?.id ?? null;
  } catch {
    // The lead business only feeds drift detection; its absence must not fail the connection test.
  }
  return { businesses, leadBusinessId };
}

/** `GET /user` (Sage Accounting core API): the id of the user the token belongs to; null when the answer has none. */
export async function sageAccountingUserId(
  http: SageHttp,
  config: Pick<Config, 'SAGE_ACCOUNTING_API_URL'>,
  accessToken: string,
): Promise<string | null> {
  const { body } = await http.getJson<unknown>(
    'sage-accounting',
    resolveApiUrl(config.SAGE_ACCOUNTING_API_URL, '/user').toString(),
    { headers: { authorization: `Bearer ${accessToken}` } },
  );
  const id = (body as { id?: unknown } | null)?.id;
  return typeof id === 'string' && id.length > 0 && id.length <= 256 ? id : null;
}
