/**
 * A second process of token callers (like another pod of the service): joins a test stack through its environment,
 * waits for a shared start time so both processes storm together, runs CALLERS concurrent `acquireAccessToken` calls
 * and prints one JSON line with what they got. Used by the cross-process storm test.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '../../src/config.js';
import { connectMongo } from '../../src/lib/mongo.js';
import type { Provider } from '../../src/messages.js';
import { connectClient } from '../../src/temporal/client.js';
import { acquireAccessToken } from '../../src/tokens/access.js';

const env = process.env;
const config = parseConfig(env);
const mongo = await connectMongo(config.MONGODB_URI, config.MONGODB_DB, { appName: 'token-callers' });
const client = await connectClient(config);
const conn = { tenantId: env.CALLERS_TENANT!, provider: env.CALLERS_PROVIDER as Provider };
const rejected = env.CALLERS_REJECTED_VERSION ? Number(env.CALLERS_REJECTED_VERSION) : undefined;
process.stdout.write('READY\n');
await sleep(Math.max(0, Number(env.CALLERS_START_AT) - Date.now()));
const results = await Promise.allSettled(
  Array.from({ length: Number(env.CALLERS ?? 50) }, () =>
    acquireAccessToken(
      { client, mongo, config },
      conn,
      rejected !== undefined ? { rejectedTokenVersion: rejected } : {},
    ),
  ),
);
const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
const errors = results.flatMap((r) =>
  r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason)] : [],
);
process.stdout.write(
  `RESULT ${JSON.stringify({ versions: ok.map((r) => r.tokenVersion), servedBy: ok.map((r) => r.servedBy), errors })}\n`,
);
await client.connection.close();
await mongo.close();
