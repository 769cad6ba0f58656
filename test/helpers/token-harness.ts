/**
 * Token-lifecycle test wiring: the Sage simulator over HTTP (in this process), a real Temporal worker and FerretDB
 * (via `testStack`), and the real web server (fastify `inject`) for `/connect` and `/oauth/callback`. `consent()` walks
 * the browser dance for real: our /connect → the simulator's consent page (which approves at once) → our callback.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../../src/lib/logger.js';
import {
  connectionWorkflowId,
  statusQuery,
  type ConnectionStatus,
  type Provider,
  type TenantConnectionInput,
} from '../../src/messages.js';
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../../src/simulator/server.js';
import { buildServer } from '../../src/web/server.js';
import { tenantConnection } from '../../src/workflows/index.js';
import { followConsent, waitForStatus } from './consent.js';
import { operatorAuth, testStack, type TestStack } from './env.js';

export interface TokenHarness {
  sim: RunningSimulator;
  stack: TestStack;
  web: FastifyInstance;
  /** Starts the connection workflow with this input (the UI/CLI path); returns its id. */
  start(input: TenantConnectionInput): Promise<string>;
  /** Full consent dance; returns the callback's HTTP status and page. */
  consent(tenantId: string, provider: Provider): Promise<{ status: number; body: string; callbackUrl: string }>;
  /** Follows a Sage consent URL to the simulator and returns where it redirected (our callback URL with code/state). */
  followConsent(authorizationUrl: string): Promise<string>;
  callback(callbackUrl: string): Promise<{ status: number; body: string }>;
  status(tenantId: string, provider: Provider): Promise<ConnectionStatus>;
  waitForStatus(
    tenantId: string,
    provider: Provider,
    pred: (s: ConnectionStatus) => boolean,
    timeoutMs?: number,
  ): Promise<ConnectionStatus>;
  close(): Promise<void>;
}

export async function tokenHarness(
  opts: { sim?: SimulatorOptions; env?: Record<string, string>; worker?: boolean } = {},
): Promise<TokenHarness> {
  const sim = await startSimulator({ usersPerProvider: 0, customersPerPartition: 2, ...opts.sim });
  const stack = await testStack({ ...sim.env, ...opts.env });
  if (opts.worker !== false) await stack.startWorker();
  const web = await buildServer({
    config: stack.config,
    client: stack.client,
    mongo: stack.mongo,
    log: createLogger({ level: 'silent' }),
  });

  const h: TokenHarness = {
    sim,
    stack,
    web,
    async start(input) {
      const workflowId = connectionWorkflowId(input.provider, input.tenantId);
      await stack.client.workflow.start(tenantConnection, {
        workflowId,
        taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
        args: [input],
      });
      return workflowId;
    },
    async followConsent(authorizationUrl) {
      return String(await followConsent(authorizationUrl));
    },
    async callback(callbackUrl) {
      const u = new URL(callbackUrl);
      const res = await web.inject({ method: 'GET', url: `${u.pathname}${u.search}` });
      return { status: res.statusCode, body: res.body };
    },
    async consent(tenantId, provider) {
      const res = await web.inject({
        method: 'GET',
        url: `/connect?tenantId=${encodeURIComponent(tenantId)}&provider=${provider}`,
        headers: operatorAuth,
      });
      if (res.statusCode !== 302) throw new Error(`/connect answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
      const callbackUrl = await h.followConsent(String(res.headers.location));
      return { ...(await h.callback(callbackUrl)), callbackUrl };
    },
    status(tenantId, provider) {
      return stack.client.workflow.getHandle(connectionWorkflowId(provider, tenantId)).query(statusQuery);
    },
    waitForStatus(tenantId, provider, pred, timeoutMs = 30_000) {
      return waitForStatus(stack.client, connectionWorkflowId(provider, tenantId), pred, timeoutMs, 200);
    },
    async close() {
      await web.close();
      await stack.close();
      await sim.close();
    },
  };
  return h;
}

/** A tiny webhook receiver: records every request (raw body and headers). */
export async function webhookReceiver(opts: { failFirst?: number } = {}) {
  const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  let toFail = opts.failFirst ?? 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (toFail > 0) {
        toFail--;
        res.writeHead(503).end();
        return;
      }
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { url, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}
