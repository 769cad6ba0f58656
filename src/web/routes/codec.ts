/**
 * Temporal codec server protocol (`POST /codec/encode`, `POST /codec/decode`) so the Web UI shows decrypted payloads and
 * can start workflows with encrypted input. CORS allows the UI's origin and the headers it sends.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { EncryptionCodec } from '../../temporal/codec.js';
import { codecKeyRingFromConfig } from '../../temporal/data-converter.js';
import type { WebDeps } from '../server.js';

const WirePayloads = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), z.string()).optional(), data: z.string().optional() })),
});

const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const toB64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

export function codecRoutes(deps: WebDeps): FastifyPluginAsync {
  const codec = new EncryptionCodec(codecKeyRingFromConfig(deps.config));
  return async (app) => {
    app.addHook('onRequest', async (req, reply) => {
      if (!req.url.startsWith('/codec/')) return;
      reply.header('Access-Control-Allow-Origin', req.headers.origin ?? '*');
      reply.header('Access-Control-Allow-Methods', 'POST, OPTIONS');
      reply.header('Access-Control-Allow-Headers', 'content-type, x-namespace, authorization');
      reply.header('Access-Control-Allow-Credentials', 'true');
      reply.header('Vary', 'Origin');
    });
    for (const op of ['encode', 'decode'] as const) {
      app.options(`/codec/${op}`, async (_req, reply) => reply.code(204).send());
      app.post(`/codec/${op}`, async (req, reply) => {
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
