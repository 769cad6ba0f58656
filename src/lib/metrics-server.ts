/**
 * The worker's metrics endpoint. The Temporal SDK runtime (Rust core) has its own Prometheus exporter, which we bind to
 * loopback on `WORKER_METRICS_PORT + 1`; this small HTTP server on `WORKER_METRICS_PORT` answers `GET /metrics` with our
 * prom-client registry followed by the SDK's text, so one scrape target per worker gets both.
 * Its labels carry tenant ids, so it is an operator route: it binds loopback unless `WORKER_METRICS_HOST` says otherwise,
 * and with OPERATOR_TOKEN set it answers 401 unless the request carries it (Bearer, or HTTP Basic password), like the
 * web server (src/web/security.ts).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { operatorTokenMatches, OPERATOR_REALM } from '../web/security.js';
import { registry } from './metrics.js';

/** Whether the request presents the operator token as `Bearer <token>` or as the password of HTTP Basic credentials. */
function presentsOperatorToken(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const bearer = /^Bearer (\S+)$/.exec(header);
  if (bearer) return operatorTokenMatches(token, bearer[1]!);
  const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header);
  if (!basic) return false;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && operatorTokenMatches(token, decoded.slice(colon + 1));
}

export function sdkMetricsBindAddress(port: number): string {
  return `127.0.0.1:${port + 1}`;
}

export async function startWorkerMetricsServer(opts: {
  port: number;
  host?: string;
  sdkMetricsUrl?: string;
  operatorToken?: string;
}): Promise<Server> {
  const server = createServer((req, res) => {
    if (opts.operatorToken !== undefined && !presentsOperatorToken(req, opts.operatorToken)) {
      res
        .writeHead(401, {
          'www-authenticate': `Basic realm="${OPERATOR_REALM}", charset="UTF-8"`,
          'content-type': 'text/plain',
        })
        .end('unauthorized: send Authorization: Bearer <OPERATOR_TOKEN>\n');
      return;
    }
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
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  return server;
}
