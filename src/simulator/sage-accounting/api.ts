/**
 * Sage Accounting API v3.1 under `/sage-accounting/v3.1`: `/user`, `/businesses`, `/businesses/{lead|id}`, `/contacts`,
 * `/contacts/{id}`. Envelope `$total,$page,$next,$back,$itemsPerPage,$items`; a page past the end answers the last
 * page again; `X-Business` picks the business (the lead business when absent) and is echoed on every response except
 * `/businesses*` and `/user`.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { COUNTRIES, customerDetails, type CustomerRecord, type PartitionData } from '../data.js';
import { flat } from '../oauth-common.js';
import { accountingTime, type SimUser, type SimulatorState } from '../state.js';
import { contactBase, contactFull } from './contacts.js';

const PROVIDER = 'sage-accounting' as const;

type ApiError = { $severity: 'error'; $dataCode: string; $message: string; $source: string };

export function sageError(
  reply: FastifyReply,
  status: number,
  $dataCode: string,
  $message: string,
  $source = '',
): FastifyReply {
  const body: ApiError[] = [{ $severity: 'error', $dataCode, $message, $source }];
  return reply.code(status).send(body);
}

/** Accepts `YYYY-MM-DD` (midnight UTC) or an ISO datetime with `Z` or an offset. */
export function parseSageDate(v: string): number | null {
  if (/^\d{4}-\d{2}-\d{2}$/.test(v)) {
    const t = Date.parse(`${v}T00:00:00Z`);
    return Number.isNaN(t) ? null : t;
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(v)) return null;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

declare module 'fastify' {
  interface FastifyRequest {
    simUser?: SimUser;
  }
}

export function sageAccountingApi(state: SimulatorState) {
  const filterCache = new WeakMap<PartitionData, Map<string, CustomerRecord[]>>();
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.addHook('onRequest', async (request, reply) => {
      reply.header('x_request_id', randomUUID());
      const auth = request.headers.authorization;
      if (!auth) {
        state.counters.inc('apiUnauthorized', PROVIDER);
        // As probed on the live API: a plain object, not the usual error array.
        return reply.code(401).send({
          error: "Authorization missing. Please, add an authorization token at the 'Authorization' HTTP header.",
        });
      }
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      const check = state.checkAccessToken(m?.[1]?.trim(), PROVIDER);
      if ('problem' in check) {
        state.counters.inc('apiUnauthorized', PROVIDER);
        const message =
          check.problem === 'expired'
            ? 'Access token has expired.'
            : 'Access token is invalid (JWT malformed or missing).';
        return sageError(reply, 401, 'AccessTokenVerificationError', message, 'Authorization');
      }
      state.counters.inc('apiRequests', PROVIDER);
      request.simUser = check.user;
    });

    app.setNotFoundHandler((request, reply) => sageError(reply, 404, 'RecordNotFound', 'Resource not found.'));

    app.get('/user', async (request) => {
      const u = request.simUser!;
      return {
        id: u.uuid,
        displayed_as: `Demo User ${u.index}`,
        $path: '/user',
        first_name: 'Demo',
        last_name: `User ${u.index}`,
        initials: 'DU',
        email: u.email,
        locale: 'en-GB',
      };
    });

    app.get('/businesses', async (request) => {
      const u = request.simUser!;
      const items = u.partitionIds.map((id) => {
        const b = state.businesses.get(id)!;
        return { displayed_as: b.name, id: b.id, $path: `/businesses/${b.id}` };
      });
      // Sage's own example of this endpoint spells `$items_per_page` (and returns every business at once), unlike
      // `$itemsPerPage` on other lists: clients must tolerate both spellings.
      return { $total: items.length, $page: 1, $next: null, $back: null, $items_per_page: 2147483647, $items: items };
    });

    app.get<{ Params: { key: string } }>('/businesses/:key', async (request, reply) => {
      const u = request.simUser!;
      const id = request.params.key === 'lead' ? u.partitionIds[0]! : request.params.key;
      if (!u.partitionIds.includes(id)) return sageError(reply, 404, 'RecordNotFound', 'Resource not found.');
      return businessObject(id);
    });

    app.get('/contacts', async (request, reply) => {
      const p = selectBusiness(request, reply);
      if (!p) return reply;
      return listContacts(request, reply, p);
    });

    app.get<{ Params: { id: string } }>('/contacts/:id', async (request, reply) => {
      const p = selectBusiness(request, reply);
      if (!p) return reply;
      const rec = p.byId.get(request.params.id);
      if (!rec || rec.deletedAt !== null) return sageError(reply, 404, 'RecordNotFound', 'Resource not found.');
      // A single GET shows every attribute, but nested entities and the balance follow the same switches as the list.
      const q = flat(request.query);
      return shapeContact(p, rec, ['all'], false, nestedAttributes(q.nested_attributes), q.show_balance === 'true');
    });
  };

  function businessObject(id: string) {
    const b = state.businesses.get(id)!;
    const created = accountingTime(b.createdAt);
    return {
      id: b.id,
      displayed_as: b.name,
      $path: `/businesses/${b.id}`,
      created_at: created,
      updated_at: created,
      name: b.name,
      address_line_1: b.addressLine1,
      address_line_2: null,
      city: b.city,
      postal_code: b.postalCode,
      country: {
        id: b.country,
        displayed_as: `${COUNTRIES[b.country]?.name ?? b.country} (${b.country})`,
        $path: `/countries/${b.country}`,
      },
      region: null,
      telephone: null,
      mobile: null,
      website: null,
      is_demo: false,
      ni_based: false,
      subscriptions: [
        state.lapsedBusinesses.has(id)
          ? {
              id: 'ACCOUNTING',
              displayed_as: 'Accounting',
              $path: '/subscriptions/ACCOUNTING',
              active: false,
              status: 'cancelled',
            }
          : {
              id: 'ACCOUNTING',
              displayed_as: 'Accounting',
              $path: '/subscriptions/ACCOUNTING',
              active: true,
              status: 'paying',
            },
      ],
    };
  }

  /** X-Business if sent (403 when the user cannot reach it), else the lead business; echoes the header. */
  function selectBusiness(request: FastifyRequest, reply: FastifyReply): PartitionData | undefined {
    const u = request.simUser!;
    const header = request.headers['x-business'];
    const asked = Array.isArray(header) ? header[0] : header;
    const id = asked?.trim() || u.partitionIds[0]!;
    if (!u.partitionIds.includes(id)) {
      sageError(
        reply,
        403,
        'BusinessAccessDenied',
        'The current user does not have access to the requested business.',
        'X-Business',
      );
      return undefined;
    }
    if (state.lapsedBusinesses.has(id)) {
      // Sage's answer for a business whose trial ended or subscription was cancelled (frequently raised errors page;
      // fixture sage-accounting-error-401-no-subscription.json): a 401 although the token is fine.
      state.counters.inc('apiUnauthorized', PROVIDER);
      sageError(reply, 401, 'AuthorizationFailure', 'No active subscription. (MSE)');
      return undefined;
    }
    reply.header('X-Business', id);
    return state.partition(PROVIDER, id);
  }

  function listContacts(request: FastifyRequest, reply: FastifyReply, p: PartitionData) {
    const q = flat(request.query);
    const ipp = q.items_per_page === undefined ? 20 : Number(q.items_per_page);
    if (!Number.isInteger(ipp) || ipp < 1 || ipp > 200)
      return sageError(
        reply,
        400,
        'InvalidParameter',
        'items_per_page must be an integer between 1 and 200.',
        'items_per_page',
      );
    const page = q.page === undefined ? 1 : Number(q.page);
    if (!Number.isInteger(page) || page < 1)
      return sageError(reply, 400, 'InvalidParameter', 'page must be a positive integer.', 'page');
    let since: number | null = null;
    let deletedSince: number | null = null;
    for (const [name, target] of [
      ['updated_or_created_since', (t: number) => (since = t)],
      ['deleted_since', (t: number) => (deletedSince = t)],
    ] as const) {
      const raw = q[name];
      if (raw === undefined) continue;
      const t = parseSageDate(raw);
      if (t === null) {
        return sageError(
          reply,
          400,
          'InvalidParameter',
          `${name} must be a date (YYYY-MM-DD) or an ISO 8601 datetime with Z or an offset (encode "+" as %2B).`,
          name,
        );
      }
      target(t);
    }
    const typeFilter = q.contact_type_id?.toUpperCase();
    const search = q.search?.toLowerCase();
    const matches = (r: CustomerRecord): boolean => {
      // deleted_since switches the list to deleted contacts only (deleted strictly after the time); otherwise deleted
      // contacts never appear.
      if (deletedSince !== null ? r.deletedAt === null || r.deletedAt <= deletedSince : r.deletedAt !== null)
        return false;
      if (since !== null && r.updatedAt < since) return false; // inclusive: updated_at >= since
      if (typeFilter) {
        const isC = r.kind !== 'vendor';
        const isV = r.kind !== 'customer';
        if (!((typeFilter === 'CUSTOMER' && isC) || (typeFilter === 'VENDOR' && isV))) return false;
      }
      if (search) {
        const d = customerDetails(p, r);
        if (!d.name.toLowerCase().includes(search) && !d.reference.toLowerCase().includes(search)) return false;
      }
      return true;
    };
    // Default order: creation order (Sage documents none and /contacts has no sort parameter). The filtered list is
    // cached per partition version so paging through 100k contacts does not rescan them for every page.
    const cacheKey = `${p.version}|${p.records.length}|${since}|${deletedSince}|${typeFilter}|${search}`;
    let perPartition = filterCache.get(p);
    if (!perPartition) filterCache.set(p, (perPartition = new Map()));
    let all = perPartition.get(cacheKey);
    if (!all) {
      all = p.records.filter(matches);
      if (perPartition.size > 16) perPartition.clear();
      perPartition.set(cacheKey, all);
    }
    const lastPage = Math.max(1, Math.ceil(all.length / ipp));
    const effective = Math.min(page, lastPage); // a page past the end answers the last page again
    const slice = all.slice((effective - 1) * ipp, effective * ipp);
    const attributes = (q.attributes ?? '')
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
    const nested = nestedAttributes(q.nested_attributes);
    const showBalance = q.show_balance === 'true';
    const items = slice.map((r) => shapeContact(p, r, attributes, deletedSince !== null, nested, showBalance));
    return {
      $total: all.length,
      $page: effective,
      $next: effective < lastPage ? pagePath(request, effective + 1) : null,
      $back: effective > 1 ? pagePath(request, effective - 1) : null,
      $itemsPerPage: ipp,
      $items: items,
    };
  }

  function shapeContact(
    p: PartitionData,
    r: CustomerRecord,
    attributes: string[],
    deletedList: boolean,
    nested: NestedAttributes = [],
    showBalance = false,
  ): Record<string, unknown> {
    if (attributes.length === 0) {
      const base: Record<string, unknown> = contactBase(p, r);
      if (deletedList) base.deleted_at = accountingTime(r.deletedAt!);
      if (showBalance) base.balance = contactFull(p, r).balance;
      return base;
    }
    const full = contactFull(p, r);
    const out: Record<string, unknown> = { id: full.id, displayed_as: full.displayed_as, $path: full.$path };
    if (deletedList) out.deleted_at = full.deleted_at;
    const wanted = attributes.includes('all') ? Object.keys(full) : attributes;
    for (const a of wanted) if (a in full) out[a] = nestedView(full[a], nested); // unknown attribute names are ignored
    // Swagger: `show_balance` — "Use this to display the balance for a contact"; without it there is no balance.
    if (showBalance) out.balance = full.balance;
    else delete out.balance;
    return out;
  }
}

/** `nested_attributes`: `all`, or a list of attribute names shown on nested entities in addition to their base ones. */
type NestedAttributes = 'all' | string[];

function nestedAttributes(raw: string | undefined): NestedAttributes {
  const list = (raw ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  return list.includes('all') ? 'all' : list;
}

/** A nested entity (object with an `id`, or a list of them) cut to its base attributes plus the ones asked for. */
function nestedView(value: unknown, nested: NestedAttributes): unknown {
  if (nested === 'all' || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => nestedView(v, nested));
  const entity = value as Record<string, unknown>;
  if (!('id' in entity)) return value;
  const out: Record<string, unknown> = { id: entity.id, displayed_as: entity.displayed_as, $path: entity.$path };
  for (const a of nested) if (a in entity) out[a] = entity[a];
  return out;
}

/** `$next`/`$back`: the path without `/v3.1`, keeping the caller's parameters, `page` first. */
function pagePath(request: FastifyRequest, page: number): string {
  const [pathname, query = ''] = request.url.split('?', 2) as [string, string?];
  // Keep the caller's other parameters exactly as sent (same order, same encoding).
  const rest = query.split('&').filter((kv) => kv && decodeURIComponent(kv.split('=')[0]!) !== 'page');
  const path = pathname.replace(/^.*\/v3\.1/, '');
  return `${path}?page=${page}${rest.length ? `&${rest.join('&')}` : ''}`;
}
