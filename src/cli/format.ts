/** Human-readable rendering of connections for `status` and `list`. */
import type { ConnectionOverview } from '../lib/connection-overview.js';
import { keyValues, table } from './table.js';

const dash = (v: string | number | null | undefined) => (v === null || v === undefined || v === '' ? '-' : String(v));
const when = (iso: string | null) => (iso ? iso.replace(/\.\d+Z$/, 'Z') : '-');

export function connectionsTable(list: ConnectionOverview[]): string {
  if (list.length === 0) return 'no connections';
  return table(
    [
      'TENANT',
      'PROVIDER',
      'STATE',
      'REASON',
      'PARTITIONS',
      'ACCESS TOKEN EXPIRES',
      'REFRESH TOKEN EXPIRES',
      'LAST SYNC',
      'CUSTOMERS',
    ],
    list.map((c) => [
      c.tenantId,
      c.provider,
      c.state,
      dash(c.reason),
      String(c.partitions.length),
      when(c.accessTokenExpiresAt),
      when(c.refreshTokenExpiresAt),
      when(c.lastSyncAt),
      dash(c.customers),
    ]),
  );
}

export function connectionDetails(c: ConnectionOverview): string {
  const head = keyValues([
    ['tenant', c.tenantId],
    ['provider', c.provider],
    ['workflow id', c.workflowId],
    ['state', c.state],
    ['reason', dash(c.reason)],
    ['authorization url', dash(c.authorizationUrl)],
    ['token version', dash(c.tokenVersion)],
    ['access token expires', when(c.accessTokenExpiresAt)],
    ['refresh token expires', when(c.refreshTokenExpiresAt)],
    ['last refresh', `${when(c.lastRefreshAt)}${c.refreshCount !== null ? ` (${c.refreshCount} refreshes)` : ''}`],
    ['last sync', when(c.lastSyncAt)],
    ['customers in MongoDB', dash(c.customers)],
    ['source', c.source === 'workflow' ? 'live workflow status' : 'connections collection (workflow not answering)'],
  ]);
  const ids = [...new Set([...c.partitions.map((p) => p.id), ...Object.keys(c.lastSync)])];
  if (ids.length === 0) return `${head}\n\nno partitions yet`;
  const rows = ids.map((id) => {
    const p = c.partitions.find((x) => x.id === id);
    const s = c.lastSync[id];
    return [
      id,
      dash(p?.name),
      dash(p?.siteId),
      // A partition Sage refused names why (e.g. `failed (subscription_inactive)`), as the page shows the error text.
      s ? (s.reason ? `${s.status} (${s.reason})` : s.status) : 'not synced',
      dash(s?.mode),
      when(s?.finishedAt ?? null),
      s ? String(s.fetched) : '-',
      s ? String(s.upserted) : '-',
      s ? String(s.deleted) : '-',
      s ? String(s.quarantined) : '-',
    ];
  });
  return `${head}\n\n${table(['PARTITION', 'NAME', 'SITE', 'LAST SYNC', 'MODE', 'FINISHED', 'FETCHED', 'UPSERTED', 'DELETED', 'QUARANTINED'], rows)}`;
}
