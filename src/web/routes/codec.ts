/**
 * Temporal codec server protocol (`POST /codec/encode`, `POST /codec/decode`) so the Web UI shows decrypted payloads and
 * can start workflows with encrypted input. Operator routes (security.ts): the UI's browser sends the operator's Basic
 * credentials when its codec setting "include cross-origin credentials" is on, the `temporal` CLI sends
 * `--codec-auth "Bearer …"`. CORS (security.ts) answers only `TEMPORAL_UI_URL`'s origin; a request that names any other
 * origin is refused here too, so a page elsewhere cannot have a "simple" (unpreflighted) request decoded.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { EncryptionCodec } from '../../temporal/codec.js';
import { codecKeyRingFromConfig } from '../../lib/crypto.js';
import { originOf } from '../security.js';
import type { WebDeps } from '../server.js';

const WirePayloads = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), z.string()).optional(), data: z.string().optional() })),
});

const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const toB64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

export function codecRoutes(deps: WebDeps): FastifyPluginAsync {
  const codec = new EncryptionCodec(codecKeyRingFromConfig(deps.config));
  const allowed = new Set([originOf(deps.config.TEMPORAL_UI_URL), originOf(deps.config.PUBLIC_BASE_URL)]);
  return async (app) => {
    for (const op of ['encode', 'decode'] as const) {
      app.post(`/codec/${op}`, async (req, reply) => {
        const origin = req.headers.origin;
        if (origin !== undefined && !allowed.has(origin))
          return reply.code(403).send({
            error: 'origin_not_allowed',
            message: 'only the Temporal UI (TEMPORAL_UI_URL) may call the codec from a browser',
          });
        const parsed = WirePayloads.safeParse(req.body);
        if (!parsed.success) return reply.code(400).send({ error: 'invalid_body', message: parsed.error.message });
        const payloads = parsed.data.payloads.map((p) => ({
          metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, fromB64(v)])),
          data: p.data !== undefined ? fromB64(p.data) : undefined,
        }));
        try {
          const out = await codec[op](payloads);
          return {
            payloads: out.map((p) => ({
              metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, toB64(v)])),
              data: p.data ? toB64(p.data) : undefined,
            })),
          };
        } catch (err) {
          return reply.code(400).send({ error: 'codec_failed', message: (err as Error).message });
        }
      });
    }
  };
}
