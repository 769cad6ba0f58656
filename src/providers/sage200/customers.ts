/**
 * Sage 200 customers as a `CustomerSource`.
 *
 * Paging is keyset-style on `(date_time_updated, id)`: every request carries `$orderby=date_time_updated asc, id asc`
 * (Sage rejects `$skip` without `$orderby`, and unordered paging is unstable anyway), a `$filter=date_time_updated ge T`
 * from the last timestamp seen, and `$skip` only for the rows already consumed *at* that timestamp (ties). So a customer
 * updated during the run moves behind us and is read again instead of shifting every later page by one, which would
 * make a full reconciliation flag a live customer as deleted. The listing ends when a page has fewer than `$top` rows.
 * No deletion feed exists for Sage 200: deletions come from full reconciliation only.
 */
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { SageHttp } from '../http.js';
import type { Cursor, CustomerPage, CustomerSource, FetchOptions, RequestContext, SyncTarget } from '../types.js';
import { serverDate } from '../sage-accounting/api.js';
import { getList, getOne, sage200Base, sage200Headers } from './api.js';
import { listSage200Sites } from './partitions.js';
import { InvalidInputError, SageAccessDeniedError, SageApiError, SageProtocolError } from '../../errors.js';
import { parseSage200DateTime } from '../schema-helpers.js';
import { otherSage200Edition, SAGE200_DEFAULT_EDITION } from './editions.js';
import { mapSage200Customer, SAGE200_EXPAND } from './mapping.js';

/** Sage 200 allows up to 5000; big pages can time out on Sage's side. */
export const SAGE200_MAX_PAGE = 5000;
export const ORDER_BY = 'date_time_updated asc, id asc';

const KeysetCursor = z.object({
  /** ISO timestamp (ms, `Z`) the next page starts at (inclusive), or null for "from the beginning". */
  from: z.string().nullable(),
  /** Rows at exactly `from` (in `id asc` order) already consumed. */
  skip: z.number().int().nonnegative(),
});
type KeysetCursor = z.infer<typeof KeysetCursor>;

/** Millisecond ISO form used both in `$filter` and for tie comparison (Sage sends a variable number of fraction digits). */
export function normalizeTimestamp(value: unknown): string | null {
  // Sage 200 date-times carry no zone and mean UTC (see `parseSage200DateTime`); `$filter` wants them ending in `Z`.
  return parseSage200DateTime(value)?.toISOString() ?? null;
}

/** Where the next page starts, given the rows of this one (pure; unit-tested). */
export function advanceKeyset(cursor: KeysetCursor, records: unknown[]): KeysetCursor {
  let { from, skip } = cursor;
  for (const r of records) {
    const ts = normalizeTimestamp((r as { date_time_updated?: unknown } | null)?.date_time_updated);
    if (ts === null || ts === from) {
      skip++; // a tie (or an undatable row, which Sage still counted in this position)
    } else if (from !== null && ts < from) {
      throw new SageProtocolError(
        `Sage 200 returned rows out of order (${ts} after ${from}); $orderby not honoured, refusing to page on`,
      );
    } else {
      from = ts;
      skip = 1;
    }
  }
  return { from, skip };
}

export function buildCustomersUrl(base: string, cursor: KeysetCursor, top: number): URL {
  const url = new URL(`${base}/customers`);
  url.searchParams.set('$top', String(top));
  url.searchParams.set('$orderby', ORDER_BY); // always: `$skip` is only valid (and stable) under `$orderby`
  if (cursor.from) url.searchParams.set('$filter', `date_time_updated ge ${cursor.from}`);
  if (cursor.skip > 0) url.searchParams.set('$skip', String(cursor.skip));
  url.searchParams.set('$expand', SAGE200_EXPAND.join(','));
  return url;
}

export function createSage200Source(
  http: SageHttp,
  config: Pick<Config, 'SAGE200_API_URL' | 'SAGE200_SUBSCRIPTION_KEY'>,
): CustomerSource {
  const key = config.SAGE200_SUBSCRIPTION_KEY;
  return {
    provider: 'sage-200',
    partitionHeaders: (target: SyncTarget) => sage200Headers(target, key),

    startCursor(mode, since) {
      return { from: mode === 'incremental' && since ? since.toISOString() : null, skip: 0 } satisfies KeysetCursor;
    },

    async fetchPage(ctx: RequestContext, cursor: Cursor, opts: FetchOptions): Promise<CustomerPage> {
      const parsed = KeysetCursor.safeParse(cursor);
      if (!parsed.success) throw new InvalidInputError('bad Sage 200 cursor');
      const top = Math.min(SAGE200_MAX_PAGE, Math.max(1, opts.pageSize));
      const url = buildCustomersUrl(sage200Base(config, ctx.edition), parsed.data, top);
      const { items, headers } = await getList(http, ctx, url, key);
      const nextCursor = items.length < top ? null : advanceKeyset(parsed.data, items);
      return { records: items, nextCursor, serverTime: serverDate(headers) };
    },

    async fetchOne(ctx: RequestContext, externalId: string): Promise<unknown | null> {
      const url = new URL(`${sage200Base(config, ctx.edition)}/customers/${encodeURIComponent(externalId)}`);
      url.searchParams.set('$expand', SAGE200_EXPAND.join(','));
      return getOne(http, ctx, url, key);
    },

    async explainUnauthorized(ctx: RequestContext): Promise<SageAccessDeniedError> {
      // With a token that was just refreshed, a 401 means access, not the token. `/sites` tells which: if even it is
      // refused under this edition, the tenant's sites live on the other edition (Standard `sage200` vs
      // Professional `sage200extra`); if it answers without this company, the user lost the site.
      const edition = ctx.edition ?? SAGE200_DEFAULT_EDITION;
      let listed: boolean | null = null;
      try {
        const sites = await listSage200Sites(http, config, ctx.accessToken, ctx.edition);
        listed = sites.some((s) => s.id === ctx.partition.id);
      } catch (err) {
        if (!(err instanceof SageApiError) || err.status !== 401) throw err;
      }
      if (listed === null) {
        const other = otherSage200Edition(edition);
        return new SageAccessDeniedError(
          'sage-200',
          'edition_mismatch',
          401,
          `Sage 200 refuses a freshly refreshed token for every call under edition ${edition} (even /sites): the tenant's sites are likely on ${other}; reconnect with that edition`,
        );
      }
      return new SageAccessDeniedError(
        'sage-200',
        'site_access_denied',
        401,
        listed
          ? `Sage 200 answered 401 for company ${ctx.partition.id} (site ${ctx.partition.siteId ?? '?'}) with a freshly refreshed token: the user cannot reach this site/company`
          : `Sage 200 no longer lists company ${ctx.partition.id} among the user's sites: the user lost access to this site/company`,
      );
    },

    mapCustomer: mapSage200Customer,
  };
}
