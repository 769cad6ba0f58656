/**
 * `npm run sim`: the Sage simulator on SIM_PORT (default 4010). Reads only the variables it needs, with the service's
 * names (so one .env serves both) and `demo-…` defaults; TOKEN_ENCRYPTION_KEY is not needed here.
 */
import { z } from 'zod';
import { DEMO_APPS } from './apps.js';
import { startSimulator, type SimulatorOptions } from './server.js';

const opt = z.string().min(1).optional();
const SimEnv = z.object({
  SIM_PORT: z.coerce.number().int().min(0).max(65535).default(4010),
  SIM_HOST: z.string().min(1).default('127.0.0.1'),
  SIM_SEED: z.coerce.number().int().default(1),
  SIM_CUSTOMERS_PER_PARTITION: z.coerce.number().int().min(0).default(25),
  SIM_REQUIRE_SUBSCRIPTION_KEY: z.enum(['true', 'false']).default('true'),
  PUBLIC_BASE_URL: z
    .url()
    .default('http://localhost:3000')
    .transform((v) => v.replace(/\/+$/, '')),
  SAGE_ACCOUNTING_CLIENT_ID: opt,
  SAGE_ACCOUNTING_CLIENT_SECRET: opt,
  SAGE200_CLIENT_ID: opt,
  SAGE200_CLIENT_SECRET: opt,
  SAGE200_SUBSCRIPTION_KEY: opt,
  SAGE200_AUDIENCE: opt,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export function parseSimulatorConfig(env: NodeJS.ProcessEnv): SimulatorOptions {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = SimEnv.safeParse(cleaned);
  if (!parsed.success) {
    throw new Error(
      `Invalid simulator configuration: ${parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`).join('; ')}`,
    );
  }
  const e = parsed.data;
  const redirectUri = `${e.PUBLIC_BASE_URL}/oauth/callback`;
  return {
    port: e.SIM_PORT,
    host: e.SIM_HOST,
    seed: e.SIM_SEED,
    customersPerPartition: e.SIM_CUSTOMERS_PER_PARTITION,
    requireSubscriptionKey: e.SIM_REQUIRE_SUBSCRIPTION_KEY === 'true',
    logger: { level: e.LOG_LEVEL === 'info' ? 'warn' : e.LOG_LEVEL },
    apps: {
      sageAccounting: {
        clientId: e.SAGE_ACCOUNTING_CLIENT_ID ?? DEMO_APPS.sageAccounting.clientId,
        clientSecret: e.SAGE_ACCOUNTING_CLIENT_SECRET ?? DEMO_APPS.sageAccounting.clientSecret,
        redirectUri,
      },
      sage200: {
        clientId: e.SAGE200_CLIENT_ID ?? DEMO_APPS.sage200.clientId,
        clientSecret: e.SAGE200_CLIENT_SECRET ?? DEMO_APPS.sage200.clientSecret,
        subscriptionKey: e.SAGE200_SUBSCRIPTION_KEY ?? DEMO_APPS.sage200.subscriptionKey,
        redirectUri,
        ...(e.SAGE200_AUDIENCE ? { audience: e.SAGE200_AUDIENCE } : {}),
      },
    },
  };
}

async function main(): Promise<void> {
  let options: SimulatorOptions;
  try {
    options = parseSimulatorConfig(process.env);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(78);
  }
  const sim = await startSimulator(options);
  process.stdout.write(`Sage simulator listening on ${sim.url} (admin API: ${sim.url}/__admin)\n`);
  process.stdout.write(
    `Point the service at it with:\n${Object.entries(sim.env)
      .map(([k, v]) => `  ${k}=${v}`)
      .join('\n')}\n`,
  );
  const stop = () => {
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) void main();
