/**
 * The Sage simulator: one fastify server serving both providers under the path prefixes of contract §6, plus the
 * admin API under `/__admin`. `startSimulator()` runs it in-process (tests); `main.ts` runs it standalone (`npm run sim`).
 */
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import { adminRoutes, SimulatorAdmin } from './admin.js';
import type { AppOverrides, SimulatorApps } from './apps.js';
import type { SimProvider } from './data.js';
import type { EndpointScope } from './faults.js';
import { sageAccountingApi } from './sage-accounting/api.js';
import { sageAccountingOAuth } from './sage-accounting/oauth.js';
import { sage200Api } from './sage200/api.js';
import { sage200OAuth } from './sage200/oauth.js';
import { settingsKey, SimulatorState } from './state.js';

export type { SimulatorApps } from './apps.js';
export { DEMO_APPS } from './apps.js';

export interface SimulatorOptions {
  /** Default 0 = a random free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Data seed (default 1): same seed, same users, businesses, sites and customers. */
  seed?: number;
  /** Client ids, secrets, subscription key and redirect URIs (defaults: DEMO_APPS, http://localhost:3000/oauth/callback). */
  apps?: AppOverrides;
  accessTokenTtlSeconds?: { sageAccounting?: number; sage200?: number };
  refreshTokenTtlSeconds?: { sageAccounting?: number; sage200?: number };
  /** Customers per business / company for seeded and fresh users (default 25). */
  customersPerPartition?: number;
  /** Users created at start per provider (default 2). */
  usersPerProvider?: number;
  partitionsPerUser?: { sageAccounting?: number; sage200?: number };
  /** Sage 200 `ocp-apim-subscription-key` enforcement (default true). */
  requireSubscriptionKey?: boolean;
  /** Fastify logger option (default off). */
  logger?: FastifyServerOptions['logger'];
}

export interface RunningSimulator {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  close(): Promise<void>;
  /** The `SAGE_*` variables that point the service at this simulator, with the credentials it accepts. */
  env: Record<string, string>;
  apps: SimulatorApps;
  /** The admin operations as functions (same as the HTTP admin API). */
  admin: SimulatorAdmin;
  state: SimulatorState;
  app: FastifyInstance;
}

/** Which provider and endpoint kind a path belongs to (null for admin and unknown paths). */
export function classify(path: string): { provider: SimProvider; scope: EndpointScope } | null {
  if (path.startsWith('/sage-accounting/')) {
    const rest = path.slice('/sage-accounting'.length);
    if (rest.startsWith('/v3.1')) return { provider: 'sage-accounting', scope: 'api' };
    if (rest.startsWith('/oauth2/auth')) return { provider: 'sage-accounting', scope: 'authorize' };
    if (rest === '/token') return { provider: 'sage-accounting', scope: 'token' };
    if (rest === '/revoke') return { provider: 'sage-accounting', scope: 'revoke' };
    return null;
  }
  if (path.startsWith('/sage200/')) {
    const rest = path.slice('/sage200'.length);
    if (rest.startsWith('/api/')) return { provider: 'sage-200', scope: 'api' };
    if (rest === '/authorize') return { provider: 'sage-200', scope: 'authorize' };
    if (rest === '/oauth/token') return { provider: 'sage-200', scope: 'token' };
    if (rest === '/oauth/revoke') return { provider: 'sage-200', scope: 'revoke' };
  }
  return null;
}

/** An error answer shaped as the provider would shape it for that kind of endpoint. */
function sendFault(
  reply: FastifyReply,
  provider: SimProvider,
  scope: EndpointScope,
  status: number,
  retryAfterSeconds: number | null,
): FastifyReply {
  if (retryAfterSeconds !== null) reply.header('retry-after', String(retryAfterSeconds));
  reply.code(status);
  if (scope === 'authorize')
    return reply.type('text/html; charset=utf-8').send(`<!doctype html><h1>${status} Service unavailable</h1>`);
  if (scope === 'token' || scope === 'revoke') {
    const error = status === 429 ? 'too_many_requests' : status === 503 ? 'temporarily_unavailable' : 'server_error';
    return reply.send({
      error,
      error_description:
        status === 429 ? 'Too many requests.' : 'The authorization server could not handle the request.',
    });
  }
  if (provider === 'sage-accounting') {
    const [code, message] =
      status === 429
        ? ['TooManyRequests', 'Too many requests. Please retry later.']
        : status === 503
          ? ['ServiceUnavailable', 'The service is temporarily unavailable. Please retry later.']
          : ['UnexpectedError', 'An unexpected error occurred.'];
    return reply.send([{ $severity: 'error', $dataCode: code, $message: message, $source: '' }]);
  }
  if (status === 429)
    return reply.send({
      statusCode: 429,
      message: `Rate limit is exceeded. Try again in ${retryAfterSeconds ?? 1} seconds.`,
    });
  return reply.send({ Message: 'An error has occurred.' });
}

/** A customer list page: Sage Accounting `/v3.1/contacts`, Sage 200 `/…/accounts/v1/customers` (not one customer by id). */
const CUSTOMER_LIST = /\/(v3\.1\/contacts|accounts\/v1\/customers)$/;

export async function buildSimulator(
  opts: SimulatorOptions = {},
): Promise<{ app: FastifyInstance; state: SimulatorState; admin: SimulatorAdmin }> {
  const state = new SimulatorState({
    seed: opts.seed,
    apps: opts.apps,
    customersPerPartition: opts.customersPerPartition,
    usersPerProvider: opts.usersPerProvider,
    partitionsPerUser: opts.partitionsPerUser,
    accessTokenTtlSeconds: opts.accessTokenTtlSeconds,
    refreshTokenTtlSeconds: opts.refreshTokenTtlSeconds,
    requireSubscriptionKey: opts.requireSubscriptionKey,
  });
  const admin = new SimulatorAdmin(state);
  const app = Fastify({ logger: opts.logger ?? false, disableRequestLogging: true, forceCloseConnections: true });
  await app.register(formbody);

  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0]!;
    if (path.startsWith('/__admin')) return;
    const cls = classify(path);
    state.counters.request(path);
    const end = state.counters.begin(cls?.provider);
    reply.raw.once('close', end);
    if (!cls) return;
    if (cls.scope === 'api' && request.method === 'GET' && CUSTOMER_LIST.test(path)) {
      // Counted from arrival (latency faults included: that is the time Sage spends on the page) to the answer.
      const h = request.headers;
      const partition = String(
        h['x-business'] ??
          (h['x-company'] !== undefined ? `${String(h['x-company'])}/${String(h['x-site'] ?? '')}` : '?'),
      );
      reply.raw.once('close', state.counters.beginCustomerPage(partition));
    }
    const limit = state.settings[settingsKey(cls.provider)].maxConcurrentRequests;
    if (cls.scope === 'api' && limit > 0 && state.counters.inFlightFor(cls.provider) > limit) {
      state.counters.inc('rateLimited', cls.provider);
      return sendFault(
        reply,
        cls.provider,
        cls.scope,
        429,
        state.settings[settingsKey(cls.provider)].concurrencyRetryAfterSeconds,
      );
    }
    const { latencyMs, action, held } = state.faults.evaluate(cls.provider, cls.scope, path);
    if (latencyMs > 0) await sleep(latencyMs);
    if (held.length > 0) await Promise.all(held);
    if (!action) return;
    state.counters.inc('faultsInjected', cls.provider);
    if (action.kind === 'drop') {
      state.counters.inc('droppedConnections', cls.provider);
      reply.hijack();
      request.raw.socket.destroy();
      return reply;
    }
    if (action.status === 429) state.counters.inc('rateLimited', cls.provider);
    return sendFault(reply, cls.provider, cls.scope, action.status, action.retryAfterSeconds);
  });

  // Dates the service reads from responses (e.g. as a sync watermark) follow the simulator clock, offset included.
  app.addHook('onSend', async (request, reply) => {
    if (!request.url.startsWith('/__admin')) reply.header('date', new Date(state.now()).toUTCString());
  });

  await app.register(sageAccountingOAuth(state), { prefix: '/sage-accounting' });
  await app.register(sageAccountingApi(state), { prefix: '/sage-accounting/v3.1' });
  await app.register(sage200OAuth(state), { prefix: '/sage200' });
  await app.register(sage200Api(state), { prefix: '/sage200/api/uk' });
  await app.register(adminRoutes(admin), { prefix: '/__admin' });
  app.get('/', async () => ({
    name: 'sage-simulator',
    admin: '/__admin',
    providers: ['/sage-accounting', '/sage200'],
  }));
  return { app, state, admin };
}

export function simulatorEnv(url: string, apps: SimulatorApps): Record<string, string> {
  return {
    SAGE_ACCOUNTING_AUTH_URL: `${url}/sage-accounting/oauth2/auth/central?filter=apiv3.1`,
    SAGE_ACCOUNTING_TOKEN_URL: `${url}/sage-accounting/token`,
    SAGE_ACCOUNTING_REVOKE_URL: `${url}/sage-accounting/revoke`,
    SAGE_ACCOUNTING_API_URL: `${url}/sage-accounting/v3.1`,
    SAGE_ACCOUNTING_CLIENT_ID: apps.sageAccounting.clientId,
    SAGE_ACCOUNTING_CLIENT_SECRET: apps.sageAccounting.clientSecret,
    SAGE200_AUTH_URL: `${url}/sage200/authorize`,
    SAGE200_TOKEN_URL: `${url}/sage200/oauth/token`,
    SAGE200_REVOKE_URL: `${url}/sage200/oauth/revoke`,
    SAGE200_API_URL: `${url}/sage200/api/uk`,
    SAGE200_CLIENT_ID: apps.sage200.clientId,
    SAGE200_CLIENT_SECRET: apps.sage200.clientSecret,
    SAGE200_SUBSCRIPTION_KEY: apps.sage200.subscriptionKey,
    SAGE200_AUDIENCE: apps.sage200.audience,
  };
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<RunningSimulator> {
  const { app, state, admin } = await buildSimulator(opts);
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ port: opts.port ?? 0, host });
  const port = (app.server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url,
    port,
    env: simulatorEnv(url, state.apps),
    apps: state.apps,
    admin,
    state,
    app,
    close: () => app.close(),
  };
}
