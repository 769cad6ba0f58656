/**
 * Sage 200 API under `/sage200/api/uk/{sage200|sage200extra}/accounts/v1`: `/sites`, `/customers`, `/customers/{id}`.
 * Every call needs `ocp-apim-subscription-key` (when enabled) and a Bearer token; data calls also `X-Company` and
 * `X-Site`. Auth problems answer 401 with an empty body; subscription-key problems answer as Azure API Management does.
 * Deleted customers simply disappear (no deleted-records feed): clients find deletions by full reconciliation.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CustomerRecord, PartitionData } from '../data.js';
import { flat } from '../oauth-common.js';
import type { SimulatorState } from '../state.js';
import { CUSTOMER_FIELDS, CustomerRow, EXPANDABLE, customerJson } from './customers.js';
import { ODataError, parseFilter, parseList, parseOrderBy, type OrderTerm, type Predicate, type Row } from './odata.js';

const PROVIDER = 'sage-200' as const;
const TOP_DEFAULT = 500;
const TOP_MAX = 5000;

declare module 'fastify' {
  interface FastifyRequest {
    sage200Partition?: PartitionData;
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return (Array.isArray(v) ? v[0] : v)?.trim() || undefined;
}

function badRequest(reply: FastifyReply, message: string) {
  return reply.code(400).send({ Message: message });
}

export function sage200Api(state: SimulatorState) {
  /** Sorted views per partition and $orderby, rebuilt when the partition changes. */
  const sortCache = new WeakMap<PartitionData, Map<string, { version: number; rows: CustomerRow[] }>>();

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.setNotFoundHandler((request, reply) =>
      reply.code(404).send({ statusCode: 404, message: 'Resource not found' }),
    );

    app.register(
      async (edition) => {
        edition.addHook('onRequest', async (request, reply) => {
          const ed = (request.params as { edition?: string }).edition;
          if (ed !== 'sage200' && ed !== 'sage200extra')
            return reply.code(404).send({ statusCode: 404, message: 'Resource not found' });
          if (state.settings.sage200.requireSubscriptionKey) {
            const key = header(request, 'ocp-apim-subscription-key') ?? flat(request.query)['subscription-key'];
            if (!key) {
              return reply.code(401).send({
                statusCode: 401,
                message:
                  'Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.',
              });
            }
            if (key !== state.apps.sage200.subscriptionKey) {
              return reply.code(401).send({
                statusCode: 401,
                message:
                  'Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.',
              });
            }
          }
          const m = /^Bearer\s+(.+)$/i.exec(header(request, 'authorization') ?? '');
          const check = state.checkAccessToken(m?.[1]?.trim(), PROVIDER);
          // Tokens minted without the Sage 200 audience are not valid for this API; nor are tokens for the other edition.
          if ('problem' in check || check.grant.audience !== state.apps.sage200.audience || check.user.edition !== ed) {
            state.counters.inc('apiUnauthorized', PROVIDER);
            return reply.code(401).header('www-authenticate', 'Bearer').send();
          }
          state.counters.inc('apiRequests', PROVIDER);
          request.simUser = check.user;
          if (request.routeOptions.url?.endsWith('/sites')) return;
          // Every company-specific call needs both headers and a site/company this user can reach.
          const company = header(request, 'x-company');
          const site = header(request, 'x-site');
          const s = company ? state.sites.get(company) : undefined;
          const reachable =
            !!s && check.user.partitionIds.includes(company!) && !state.removedSites.has(`${check.user.id}:${company}`);
          if (!reachable || s!.siteId.toLowerCase() !== (site ?? '').toLowerCase()) {
            // Sage 200 answers an unreachable (or missing) site/company with 401 and an empty body, token valid or not.
            state.counters.inc('apiUnauthorized', PROVIDER);
            return reply.code(401).send();
          }
          request.sage200Partition = state.partition(PROVIDER, company!);
        });

        edition.get('/sites', async (request) =>
          request
            .simUser!.partitionIds.filter((pid) => !state.removedSites.has(`${request.simUser!.id}:${pid}`))
            .map((pid) => {
              const s = state.sites.get(pid)!;
              return {
                company_id: s.companyId,
                company_name: s.companyName,
                tenant_id: s.tenantId,
                site_id: s.siteId,
                site_name: s.siteName,
                site_short_name: s.siteShortName,
              };
            }),
        );

        edition.get('/customers', async (request, reply) => {
          try {
            return listCustomers(request, request.sage200Partition!);
          } catch (err) {
            if (err instanceof ODataError) return badRequest(reply, err.message);
            throw err;
          }
        });

        edition.get<{ Params: { id: string } }>('/customers/:id', async (request, reply) => {
          const p = request.sage200Partition!;
          const rec = p.byId.get(request.params.id);
          if (!rec || rec.deletedAt !== null)
            return reply.code(404).send({ Message: `No customer found with id ${request.params.id}.` });
          try {
            const q = flat(request.query);
            const expand = q.$expand ? parseList(q.$expand, EXPANDABLE, '$expand') : [];
            return customerJson(p, rec, expand);
          } catch (err) {
            if (err instanceof ODataError) return badRequest(reply, err.message);
            throw err;
          }
        });
      },
      { prefix: '/:edition/accounts/v1' },
    );
  };

  function sorted(p: PartitionData, orderBy: OrderTerm[] | null): CustomerRow[] {
    const key = orderBy ? orderBy.map((t) => `${t.field} ${t.desc ? 'desc' : 'asc'}`).join(',') : '';
    let perPartition = sortCache.get(p);
    if (!perPartition) sortCache.set(p, (perPartition = new Map()));
    const hit = perPartition.get(key);
    if (hit && hit.version === p.version) return hit.rows;
    // Live customers only: a deleted customer is simply gone. Default order (no $orderby): by id.
    const rows = p.records.filter((r: CustomerRecord) => r.deletedAt === null).map((r) => new CustomerRow(p, r));
    if (orderBy) {
      rows.sort((a, b) => {
        for (const t of orderBy) {
          const av = (a as unknown as Row)[t.field] as number | string;
          const bv = (b as unknown as Row)[t.field] as number | string;
          if (av !== bv) return (av < bv ? -1 : 1) * (t.desc ? -1 : 1);
        }
        return 0;
      });
    }
    perPartition.set(key, { version: p.version, rows });
    return rows;
  }

  function listCustomers(request: FastifyRequest, p: PartitionData) {
    const q = flat(request.query);
    const top = q.$top === undefined ? TOP_DEFAULT : Number(q.$top);
    if (!Number.isInteger(top) || top < 0)
      throw new ODataError(`Invalid value '${q.$top}' for $top query option found.`);
    if (top > TOP_MAX)
      throw new ODataError(
        `The limit of '${TOP_MAX}' for Top query has been exceeded. The value from the incoming request is '${top}'.`,
      );
    const skip = q.$skip === undefined ? 0 : Number(q.$skip);
    if (!Number.isInteger(skip) || skip < 0)
      throw new ODataError(`Invalid value '${q.$skip}' for $skip query option found.`);
    if (q.$skip !== undefined && !q.$orderby) {
      throw new ODataError(
        'The query specified in the URI is not valid. $skip requires $orderby: add a $orderby with a unique key (e.g. $orderby=id asc) so pages are stable.',
      );
    }
    const orderBy = q.$orderby ? parseOrderBy(q.$orderby, CUSTOMER_FIELDS) : null;
    const filter: Predicate | null = q.$filter ? parseFilter(q.$filter, CUSTOMER_FIELDS) : null;
    const select = q.$select ? parseList(q.$select, Object.keys(CUSTOMER_FIELDS), '$select') : null;
    const expand = q.$expand ? parseList(q.$expand, EXPANDABLE, '$expand') : [];
    const rows = sorted(p, orderBy);
    const page: CustomerRow[] = [];
    let skipped = 0;
    for (const row of rows) {
      if (page.length >= top) break;
      if (filter && !filter(row as unknown as Row)) continue;
      if (skipped < skip) {
        skipped++;
        continue;
      }
      page.push(row);
    }
    return page.map((row) => {
      const full = customerJson(p, row.rec, expand);
      if (!select) return full;
      const out: Record<string, unknown> = {};
      for (const f of [...select, ...expand]) out[f] = full[f];
      return out;
    });
  }
}
