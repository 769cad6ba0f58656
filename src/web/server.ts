/**
 * The HTTP server (`npm run web`): OAuth connect/callback, the connections page, the Temporal codec endpoints, health
 * and metrics. Each concern registers its routes from its own module under `routes/`; who may call them (operator
 * credential, CORS, CSRF, headers, rate limits) is decided in `security.ts`, before any route is registered.
 */
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Mongo } from '../lib/mongo.js';
import { codecRoutes } from './routes/codec.js';
import { healthRoutes } from './routes/health.js';
import { connectionsPageRoutes } from './routes/connections-page.js';
import { metricsRoutes } from './routes/metrics.js';
import { oauthRoutes } from './routes/oauth.js';
import { registerSecurity } from './security.js';

export interface WebDeps {
  config: Config;
  client: Client;
  mongo: Mongo;
  log: Logger;
}

export async function buildServer(deps: WebDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.log as FastifyBaseLogger, disableRequestLogging: true, trustProxy: true });
  await registerSecurity(app, deps.config);
  await app.register(codecRoutes(deps));
  await app.register(healthRoutes(deps));
  await app.register(connectionsPageRoutes(deps));
  await app.register(metricsRoutes(deps));
  await app.register(oauthRoutes(deps));
  return app;
}
