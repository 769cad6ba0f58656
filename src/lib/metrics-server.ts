/**
 * The worker's metrics endpoint. The Temporal SDK runtime (Rust core) has its own Prometheus exporter, which we bind to
 * loopback on `WORKER_METRICS_PORT + 1`; this small HTTP server on `WORKER_METRICS_PORT` answers `GET /metrics` with our
 * prom-client registry followed by the SDK's text, so one scrape target per worker gets both.
 */
import { createServer, type Server } from 'node:http';
import { registry } from './metrics.js';

export function sdkMetricsBindAddress(port: number): string {
  return `127.0.0.1:${port + 1}`;
}

export async function startWorkerMetricsServer(opts: { port: number; host?: string; sdkMetricsUrl?: string }): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    void (async () => {
      let sdk = '';
      if (opts.sdkMetricsUrl) {
        try {
          const r = await fetch(opts.sdkMetricsUrl, { signal: AbortSignal.timeout(2_000) });
          sdk = r.ok ? await r.text() : `# SDK metrics unavailable: HTTP ${r.status}\n`;
        } catch (err) {
          sdk = `# SDK metrics unavailable: ${(err as Error).message}\n`;
        }
      }
      const ours = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(`${ours}\n${sdk}`);
    })().catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  return server;
}
