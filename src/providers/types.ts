/**
 * The one provider interface the customer sync is written against. Each Sage product implements it in its own folder
 * (`sage-accounting/`, `sage200/`); the sync engine (`src/sync/`) never knows which product it talks to.
 *
 * A source is stateless: everything a resumed run needs is in the JSON-serialisable `cursor`, which the engine stores in
 * the activity heartbeat and in `sync_runs` after every page.
 */
import type { Partition, Provider } from '../messages.js';
import type { SageAccessDeniedError } from '../errors.js';

/** What a partition sync is about: one tenant, one provider, one business (Sage Accounting) or company+site (Sage 200). */
export interface SyncTarget {
  tenantId: string;
  provider: Provider;
  partition: Partition;
  /** Sage 200 only: `sage200` or `sage200extra`, part of the API base URL. */
  edition?: string;
}

/** Per-request context: the target plus the bearer token to use for this page. */
export interface RequestContext extends SyncTarget {
  accessToken: string;
}

/** An opaque, JSON-serialisable position in a listing (parsed back by the source that made it). */
export type Cursor = Record<string, unknown>;

/** The highest `(updated_at, id)` key seen; the next incremental run asks for everything from `updatedAt - overlap`. */
export interface Watermark {
  /** ISO-8601 UTC. */
  updatedAt: string;
  id: string;
}

export interface CustomerPage {
  /** Items exactly as received (validated later, one by one, so one bad record never sinks a page). */
  records: unknown[];
  /** Where to continue, or null when this was the last page. */
  nextCursor: Cursor | null;
  /** Total matching items when the API says so. */
  total?: number;
  /** Server clock from the `Date` response header, used to start the deletion feed after a full sync. */
  serverTime?: Date;
  /** Which numbered page this was (Sage Accounting `$page`), when the API numbers its pages. */
  pageNumber?: number;
  /** Items per page the API says it used (Sage Accounting `$itemsPerPage`). */
  perPage?: number;
}

/** A page that can be fetched ahead of its turn: its cursor and the page number Sage must answer with. */
export interface PlannedPage {
  cursor: Cursor;
  pageNumber: number;
}

export interface DeletedRef {
  externalId: string;
  deletedAt: Date | null;
}

export interface DeletionPage {
  deletions: DeletedRef[];
  nextCursor: Cursor | null;
  serverTime?: Date;
}

/** The contract §4 customer fields a provider maps to (the engine adds keys, `raw`, and bookkeeping). */
export interface NormalizedCustomer {
  externalId: string;
  reference: string | null;
  name: string | null;
  email: string | null;
  phone: string | null;
  currency: string | null;
  balance: number | null;
  creditLimit: number | null;
  address: {
    line1: string | null;
    line2: string | null;
    city: string | null;
    postalCode: string | null;
    country: string | null;
  };
  active: boolean;
  sourceUpdatedAt: Date;
}

export type MapResult =
  | { ok: true; customer: NormalizedCustomer }
  /** `skip` = not a customer at all (e.g. a vendor slipped through); it is neither written nor quarantined. */
  | { ok: false; skip?: false; externalId: string | null; reason: string }
  | { ok: false; skip: true; externalId: string | null; reason: string };

export interface FetchOptions {
  /** Page size; each source clamps it to what its API allows. */
  pageSize: number;
}

export interface CustomerSource {
  readonly provider: Provider;
  /** Headers that pin every request to the partition (Sage silently falls back to the lead business without them). */
  partitionHeaders(target: SyncTarget): Record<string, string>;
  /** The first cursor of a listing: everything (`full`) or what changed since `since` (inclusive) for `incremental`. */
  startCursor(mode: 'full' | 'incremental', since: Date | null): Cursor;
  fetchPage(ctx: RequestContext, cursor: Cursor, opts: FetchOptions): Promise<CustomerPage>;
  /**
   * The pages after `page` up to the last one its total implies, in order, when the API pages by number and says its
   * total (Sage Accounting `page=N` + `$total`), so the engine may fetch them ahead, concurrently. Absent or empty →
   * the listing is read one page at a time through `nextCursor` (Sage 200: keyset paging, no total).
   */
  plannedPagesAfter?(page: CustomerPage, cursor: Cursor): PlannedPage[];
  /** Deletion feed (Sage Accounting `deleted_since`); absent when the API has none (Sage 200: full reconciliation only). */
  deletions?: {
    startCursor(since: Date): Cursor;
    fetchPage(ctx: RequestContext, cursor: Cursor, opts: FetchOptions): Promise<DeletionPage>;
  };
  /**
   * One customer by id, shaped like a list item, or null when Sage says it does not exist (404). Full reconciliation
   * uses it to confirm the few customers a listing did not return before flagging them deleted, because offset paging
   * (Sage Accounting) skips a record whenever an earlier one is deleted mid-run.
   */
  fetchOne?(ctx: RequestContext, externalId: string): Promise<unknown | null>;
  /**
   * Explains a 401 that persisted on a freshly refreshed token (so the token is not the problem): which access problem
   * it is, in the operator's terms. Absent → a generic `token_rejected`.
   */
  explainUnauthorized?(ctx: RequestContext): Promise<SageAccessDeniedError>;
  /** Validates one raw item (zod) and maps it to the normalized shape, or says why it is rejected. */
  mapCustomer(raw: unknown): MapResult;
}
