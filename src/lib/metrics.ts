/**
 * Our Prometheus metrics (prom-client). One registry per process: the worker's activities increment the counters and
 * the worker serves them (with the Temporal SDK runtime metrics) on `WORKER_METRICS_PORT`; the web server serves its own
 * registry on `GET /metrics`, where connection-level gauges (state, sync lag) are computed from MongoDB at scrape time.
 *
 * Other modules call the small functions below instead of touching prom-client, so metric names and labels stay in
 * this file. Tenant ids appear as a label only on the per-connection gauges (one series per connection, which is what an
 * operator asks about); counters are labelled by provider and outcome only, to keep cardinality flat.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Provider } from '../messages.js';
import {
  ACCESS_REASONS,
  boundedReason,
  REAUTHORIZATION_METRIC_REASONS,
  type AccessReason,
} from '../connection/reasons.js';

export const registry = new Registry();

const PREFIX = 'sage_sync_';

export const tokenRefreshes = new Counter({
  name: `${PREFIX}token_refreshes_total`,
  help: 'OAuth token refreshes, by provider and outcome (success, invalid_grant, client_invalid, transient_error, ...).',
  labelNames: ['provider', 'outcome'] as const,
  registers: [registry],
});

export const reauthorizations = new Counter({
  name: `${PREFIX}reauthorizations_required_total`,
  help: 'Connections that moved to reauthorization_required, by provider and reason.',
  labelNames: ['provider', 'reason'] as const,
  registers: [registry],
});

export const recordsFetched = new Counter({
  name: `${PREFIX}records_fetched_total`,
  help: 'Customer records fetched from Sage.',
  labelNames: ['provider'] as const,
  registers: [registry],
});

export const recordsUpserted = new Counter({
  name: `${PREFIX}records_upserted_total`,
  help: 'Customer documents inserted or changed in MongoDB.',
  labelNames: ['provider'] as const,
  registers: [registry],
});

export const recordsQuarantined = new Counter({
  name: `${PREFIX}records_quarantined_total`,
  help: 'Customer records that failed validation and were written to the quarantine collection.',
  labelNames: ['provider'] as const,
  registers: [registry],
});

export const syncRuns = new Counter({
  name: `${PREFIX}sync_runs_total`,
  help: 'Finished partition sync runs, by provider, mode and status.',
  labelNames: ['provider', 'mode', 'status'] as const,
  registers: [registry],
});

export const rateLimited = new Counter({
  name: `${PREFIX}sage_rate_limited_total`,
  help: 'HTTP 429 responses received from Sage.',
  labelNames: ['provider'] as const,
  registers: [registry],
});

export const sageRequestDuration = new Histogram({
  name: `${PREFIX}sage_request_duration_seconds`,
  help: 'Latency of Sage HTTP requests, by provider, operation (normalised path) and status class.',
  labelNames: ['provider', 'operation', 'status'] as const,
  buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

/** Unix time of the last successful sync of a connection, set by the process that ran it (worker). */
export const lastSyncSuccess = new Gauge({
  name: `${PREFIX}last_sync_success_timestamp_seconds`,
  help: 'Unix time at which the last successful sync of a connection finished (worker process view).',
  labelNames: ['provider', 'tenant_id'] as const,
  registers: [registry],
});

/** Seconds since each connection last synced, computed from the `connections` collection when scraped (web process). */
export const syncLag = new Gauge({
  name: `${PREFIX}sync_lag_seconds`,
  help: 'Seconds since the connection last finished a sync (from the connections collection; absent before the first sync).',
  labelNames: ['provider', 'tenant_id', 'state'] as const,
  registers: [registry],
});

export const connectionsByState = new Gauge({
  name: `${PREFIX}connections`,
  help: 'Connections by provider and state (from the connections collection).',
  labelNames: ['provider', 'state'] as const,
  registers: [registry],
});

// ---- the functions other modules call ----

export function countTokenRefresh(provider: Provider, outcome: string): void {
  tokenRefreshes.inc({ provider, outcome });
}

/** `reason` is a label: only the bounded set of `REAUTHORIZATION_METRIC_REASONS` (src/connection/reasons.ts), else `other`. */
export function countReauthorization(provider: Provider, reason: string): void {
  reauthorizations.inc({ provider, reason: boundedReason(REAUTHORIZATION_METRIC_REASONS, reason) });
}

export function countSyncRecords(
  provider: Provider,
  n: { fetched?: number; upserted?: number; quarantined?: number },
): void {
  if (n.fetched) recordsFetched.inc({ provider }, n.fetched);
  if (n.upserted) recordsUpserted.inc({ provider }, n.upserted);
  if (n.quarantined) recordsQuarantined.inc({ provider }, n.quarantined);
}

/** Partitions Sage refused for an access reason (lapsed subscription, lost site, bad APIM key, wrong edition, …). */
export const syncAccessDenied = new Counter({
  name: `${PREFIX}sync_access_denied_total`,
  help: 'Partition sync runs refused by Sage for an access reason (not the token), by provider and reason.',
  labelNames: ['provider', 'reason'] as const,
  registers: [registry],
});

/** `reason` is a label: one of `ACCESS_REASONS` (src/connection/reasons.ts), else `other`. */
export function countSyncAccessDenied(provider: Provider, reason: AccessReason): void {
  syncAccessDenied.inc({ provider, reason: boundedReason(ACCESS_REASONS, reason) });
}

export function countSyncRun(provider: Provider, mode: string, status: string): void {
  syncRuns.inc({ provider, mode, status });
}

export function recordSyncSucceeded(provider: Provider, tenantId: string, at: Date = new Date()): void {
  lastSyncSuccess.set({ provider, tenant_id: tenantId }, at.getTime() / 1000);
}

/**
 * Collapses ids in a Sage path so the histogram stays bounded: `/v3.1/contacts/abc123` → `/v3.1/contacts/:id`,
 * `/sage200/api/uk/sage200extra/accounts/v1/customers` unchanged.
 */
export function normaliseSagePath(path: string): string {
  return path
    .split('/')
    .map((seg) => (/^\d+$/.test(seg) || /^[0-9a-f-]{16,}$/i.test(seg) || seg.length > 24 ? ':id' : seg))
    .join('/');
}

/**
 * Matches `SageHttpOptions.onResponse` (src/providers/http.ts): pass it there and every Sage call is timed and its
 * 429s counted.
 */
export function observeSageResponse(info: {
  provider: Provider;
  path: string;
  status: number;
  durationMs: number;
}): void {
  if (info.status === 429) rateLimited.inc({ provider: info.provider });
  sageRequestDuration.observe(
    { provider: info.provider, operation: normaliseSagePath(info.path), status: `${Math.floor(info.status / 100)}xx` },
    info.durationMs / 1000,
  );
}

let defaultsOn = false;
/** Node process metrics (CPU, memory, event loop lag, GC); called by the web and worker entry points, not by tests. */
export function enableProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
}
