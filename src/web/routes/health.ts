import type { Connection } from '@temporalio/client';
import type { FastifyPluginAsync } from 'fastify';
import { pingMongo } from '../../lib/mongo.js';
import type { WebDeps } from '../server.js';

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `/healthz` (public, contract §5) answers 200 only when both Temporal and MongoDB answer; 503 names what is down. */
export function healthRoutes(deps: WebDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', { config: { public: true } }, async (_req, reply) => {
      const checks = await Promise.allSettled([
        // The gRPC deadline ends the call itself (nothing left pending after we answer); withTimeout is the backstop.
        withTimeout(
          (deps.client.connection as Connection).withDeadline(Date.now() + 3_000, () =>
            (deps.client.connection as Connection).healthService.check({}),
          ),
          3_500,
        ),
        withTimeout(pingMongo(deps.mongo), 3_000),
      ]);
      const [temporal, mongo] = checks.map((c) =>
        c.status === 'fulfilled' ? 'ok' : `down: ${(c.reason as Error).message}`,
      );
      const ok = temporal === 'ok' && mongo === 'ok';
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', temporal, mongodb: mongo });
    });
  };
}
