/**
 * `GET /metrics`: Prometheus text for the web process. Connection-level gauges (connections by state, sync lag per
 * connection) are recomputed from the `connections` collection on each scrape, so they are right whichever worker ran
 * the sync. The worker's counters (refreshes, records, 429s, Sage latency) and the Temporal SDK runtime metrics are served
 * by the worker process on `WORKER_METRICS_PORT` (see src/lib/metrics-server.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import { connectionsByState, enableProcessMetrics, registry, syncLag } from '../../lib/metrics.js';
import { connectionsCollection } from '../../lib/connection-doc.js';
import type { WebDeps } from '../server.js';

export async function refreshConnectionGauges(deps: Pick<WebDeps, 'mongo'>, now = Date.now()): Promise<void> {
  const docs = await connectionsCollection(deps.mongo)
    .find({}, { projection: { tenantId: 1, provider: 1, state: 1, lastSyncAt: 1 } })
    .limit(10_000)
    .toArray();
  connectionsByState.reset();
  syncLag.reset();
  const counts = new Map<string, { provider: string; state: string; n: number }>();
  for (const d of docs) {
    const provider = d.provider ?? 'unknown';
    const state = d.state ?? 'unknown';
    const key = `${provider}\u0000${state}`;
    const entry = counts.get(key) ?? { provider, state, n: 0 };
    entry.n++;
    counts.set(key, entry);
    if (d.lastSyncAt && d.state !== 'disconnected') {
      const at = new Date(d.lastSyncAt).getTime();
      if (!Number.isNaN(at))
        syncLag.set({ provider, tenant_id: d.tenantId ?? d._id, state }, Math.max(0, (now - at) / 1000));
    }
  }
  for (const { provider, state, n } of counts.values()) connectionsByState.set({ provider, state }, n);
}

export function metricsRoutes(deps: WebDeps): FastifyPluginAsync {
  return async (app) => {
    if (deps.config.NODE_ENV !== 'test') enableProcessMetrics();
    app.get('/metrics', async (_req, reply) => {
      try {
        await refreshConnectionGauges(deps);
      } catch (err) {
        // MongoDB down: still serve the process and counter metrics; /healthz reports the outage.
        deps.log.warn({ err }, 'metrics: could not read connections');
      }
      return reply.header('content-type', registry.contentType).send(await registry.metrics());
    });
  };
}
