/**
 * Sage Accounting customers as a `CustomerSource`.
 *
 * Paging: `/contacts?contact_type_id=CUSTOMER&items_per_page=200&attributes=…` and then `$next` until it is null. Sage
 * answers a page past the end with the last page again, so the listing never ends on "empty page"; a guard derived
 * from `$total` stops a server that keeps handing out `$next` forever. To read ahead, `plannedPagesAfter` builds the
 * `page=N` URLs up to the last page the answer's `$total` and `$itemsPerPage` imply (Sage's pagination guide: `page`
 * from 1, `$next` = the same path with `page` + 1); the engine still ends on `$next == null` and checks each answer's
 * `$page` and `$total` against the plan, so a listing that changed size while paging is never read past its end.
 * Incremental: `updated_or_created_since` (inclusive). Deletions: `deleted_since` (exclusive).
 */
import { z } from 'zod';
import type { Config } from '../../config.js';
import { InvalidInputError, SageProtocolError } from '../../errors.js';
import type { SageHttp } from '../http.js';
import type {
  Cursor,
  CustomerPage,
  CustomerSource,
  DeletionPage,
  FetchOptions,
  PlannedPage,
  RequestContext,
  SyncTarget,
} from '../types.js';
import { businessHeaders, getListPage, getOne, resolveApiUrl } from './api.js';
import { CONTACT_ATTRIBUTES, contactQuery, mapSageAccountingContact } from './mapping.js';
import { sageAccountingDateParam } from '../schema-helpers.js';

/** Sage's maximum `items_per_page`. */
export const SAGE_ACCOUNTING_MAX_PAGE = 200;

const ListCursor = z.object({
  /** Path (relative to the API base, as Sage's `$next`) or absolute URL of the next page to GET. */
  next: z.string().min(1),
  /** Query parameters every page must carry; re-added if a `$next` ever drops them. */
  params: z.record(z.string(), z.string()),
  pages: z.number().int().nonnegative().default(0),
  maxPages: z.number().int().positive().optional(),
});
type ListCursor = z.infer<typeof ListCursor>;

function parseCursor(cursor: Cursor): ListCursor {
  const parsed = ListCursor.safeParse(cursor);
  if (!parsed.success) throw new InvalidInputError('bad Sage Accounting cursor');
  return parsed.data;
}

function startListCursor(params: Record<string, string>): Cursor {
  const qs = new URLSearchParams(params).toString();
  return { next: `/contacts?${qs}`, params, pages: 0 } satisfies ListCursor;
}

/** Date parameters in the documented `YYYY-MM-DDThh:mm:ss(+|-)hh:mm` form (Swagger, `/contacts` GET). */
const iso = sageAccountingDateParam;

async function fetchList(http: SageHttp, apiBase: string, ctx: RequestContext, cursor: Cursor, pageSize: number) {
  const c = parseCursor(cursor);
  if (c.pages === 0) {
    // The first request is built from the parameters, with the page size of this run; later ones follow `$next`.
    c.params.items_per_page = String(pageSize);
    c.next = `${c.next.split('?')[0]}?${new URLSearchParams(c.params).toString()}`;
  }
  const url = resolveApiUrl(apiBase, c.next);
  for (const [k, v] of Object.entries(c.params)) if (!url.searchParams.has(k)) url.searchParams.set(k, v);
  if (!url.searchParams.has('items_per_page')) url.searchParams.set('items_per_page', String(pageSize));
  const { envelope, serverTime } = await getListPage(http, ctx, url);
  const pages = c.pages + 1;
  const perPage = envelope.$itemsPerPage ?? envelope.$items_per_page ?? pageSize;
  const maxPages =
    c.maxPages ?? (envelope.$total !== undefined ? Math.ceil(envelope.$total / Math.max(1, perPage)) + 2 : undefined);
  let nextCursor: Cursor | null = null;
  if (envelope.$next) {
    if (maxPages !== undefined && pages >= maxPages + 5) {
      throw new SageProtocolError(`Sage kept returning $next after ${pages} pages (total ${envelope.$total})`);
    }
    nextCursor = {
      next: envelope.$next,
      params: c.params,
      pages,
      ...(maxPages !== undefined ? { maxPages } : {}),
    } satisfies ListCursor;
  }
  return { envelope, serverTime, nextCursor };
}

/**
 * The `page=N` cursors after `page` up to the last page its `$total` implies (pure; unit-tested). Nothing when the
 * answer lacks `$page`, `$total` or `$itemsPerPage`, or when it is the last page (`$next == null`).
 */
export function plannedPagesAfter(page: CustomerPage): PlannedPage[] {
  const { pageNumber, total, perPage } = page;
  if (!page.nextCursor || pageNumber === undefined || total === undefined || !perPage || perPage < 1) return [];
  const last = Math.max(1, Math.ceil(total / perPage));
  const next = ListCursor.parse(page.nextCursor);
  const path = next.next.split('?')[0]!;
  const out: PlannedPage[] = [];
  for (let n = pageNumber + 1; n <= last; n++) {
    // Sage's `$next` form: the caller's parameters with `page` first, and the page size the answer says it used.
    const params = { ...next.params, items_per_page: String(perPage) };
    const rest = new URLSearchParams(Object.entries(params).filter(([k]) => k !== 'page')).toString();
    const cursor: ListCursor = {
      next: `${path}?page=${n}${rest ? `&${rest}` : ''}`,
      params,
      pages: next.pages + (n - pageNumber - 1),
      ...(next.maxPages !== undefined ? { maxPages: next.maxPages } : {}),
    };
    out.push({ cursor, pageNumber: n });
  }
  return out;
}

export function createSageAccountingSource(
  http: SageHttp,
  config: Pick<Config, 'SAGE_ACCOUNTING_API_URL'>,
): CustomerSource {
  const apiBase = config.SAGE_ACCOUNTING_API_URL;
  return {
    provider: 'sage-accounting',
    partitionHeaders: (target: SyncTarget) => businessHeaders(target.partition.id),

    startCursor(mode, since) {
      const params: Record<string, string> = {
        contact_type_id: 'CUSTOMER',
        items_per_page: String(SAGE_ACCOUNTING_MAX_PAGE),
        ...contactQuery(),
      };
      if (mode === 'incremental' && since) params.updated_or_created_since = iso(since);
      return startListCursor(params);
    },

    async fetchPage(ctx: RequestContext, cursor: Cursor, opts: FetchOptions): Promise<CustomerPage> {
      const size = Math.min(SAGE_ACCOUNTING_MAX_PAGE, Math.max(1, opts.pageSize));
      const { envelope, serverTime, nextCursor } = await fetchList(http, apiBase, ctx, cursor, size);
      const perPage = envelope.$itemsPerPage ?? envelope.$items_per_page;
      return {
        records: envelope.$items,
        nextCursor,
        total: envelope.$total,
        serverTime,
        ...(envelope.$page !== undefined ? { pageNumber: envelope.$page } : {}),
        ...(perPage !== undefined ? { perPage } : {}),
      };
    },

    plannedPagesAfter: (page: CustomerPage): PlannedPage[] => plannedPagesAfter(page),

    deletions: {
      startCursor(since: Date) {
        // No contact_type_id here: a deleted contact may no longer carry its types, and unknown ids are no-ops for us.
        return startListCursor({
          deleted_since: iso(since),
          items_per_page: String(SAGE_ACCOUNTING_MAX_PAGE),
          attributes: 'deleted_at',
        });
      },
      async fetchPage(ctx: RequestContext, cursor: Cursor, opts: FetchOptions): Promise<DeletionPage> {
        const size = Math.min(SAGE_ACCOUNTING_MAX_PAGE, Math.max(1, opts.pageSize));
        const { envelope, serverTime, nextCursor } = await fetchList(http, apiBase, ctx, cursor, size);
        const deletions = [];
        for (const item of envelope.$items) {
          const parsed = DeletedItem.safeParse(item);
          if (parsed.success) deletions.push({ externalId: parsed.data.id, deletedAt: parsed.data.deleted_at ?? null });
        }
        return { deletions, nextCursor, serverTime };
      },
    },

    async fetchOne(ctx: RequestContext, externalId: string): Promise<unknown | null> {
      const url = resolveApiUrl(apiBase, `/contacts/${encodeURIComponent(externalId)}`);
      for (const [k, v] of Object.entries(contactQuery())) url.searchParams.set(k, v);
      const item = await getOne(http, ctx, url);
      if (item === null || typeof item !== 'object') return item;
      // A single GET may carry every attribute; keep the list item's shape so the content hash stays comparable.
      const keep = new Set<string>(['id', 'displayed_as', '$path', 'balance', ...CONTACT_ATTRIBUTES]);
      return Object.fromEntries(Object.entries(item as Record<string, unknown>).filter(([k]) => keep.has(k)));
    },

    mapCustomer: mapSageAccountingContact,
  };
}

const DeletedItem = z
  .object({
    id: z.string().min(1).max(64),
    deleted_at: z.iso
      .datetime({ offset: true })
      .transform((v) => new Date(v))
      .nullish()
      .catch(null),
  })
  .passthrough();
