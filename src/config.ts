/**
 * Configuration, parsed once from the environment with zod (contract §2). A bad value stops the process with a message
 * naming the variable; nothing else in the code base reads process.env for settings.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

export const DEV_KEY_FILE = path.resolve(import.meta.dirname, '..', '.local', 'token-encryption-key');
/** Where `npm start` in demo mode keeps the generated OPERATOR_TOKEN (git-ignored, like the dev key). */
export const DEV_OPERATOR_TOKEN_FILE = path.resolve(import.meta.dirname, '..', '.local', 'operator-token');

const port = z.coerce.number().int().min(0).max(65535);
const url = z.url();
const optionalString = z.string().min(1).optional();
const base64Key = z.string().refine((v) => Buffer.from(v, 'base64').length === 32 && /^[A-Za-z0-9+/]+={0,2}$/.test(v), {
  message: 'must be 32 bytes encoded as base64 (e.g. `openssl rand -base64 32`)',
});

const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d+$/, 'must be host:port')
    .default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('sage-sync'),
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://')
    .default('mongodb://127.0.0.1:27017'),
  MONGODB_DB: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/, 'must be a plain database name')
    .default('sage_sync'),
  PORT: port.default(3000),
  PUBLIC_BASE_URL: url.default('http://localhost:3000').transform((v) => v.replace(/\/+$/, '')),
  TOKEN_ENCRYPTION_KEY: base64Key.optional(),
  /** Older keys still accepted for decryption while re-encrypting, `keyId:base64,keyId:base64`. */
  TOKEN_ENCRYPTION_OLD_KEYS: z.string().optional(),
  SAGE_ACCOUNTING_CLIENT_ID: optionalString,
  SAGE_ACCOUNTING_CLIENT_SECRET: optionalString,
  SAGE_ACCOUNTING_AUTH_URL: url.default('https://www.sageone.com/oauth2/auth/central?filter=apiv3.1'),
  SAGE_ACCOUNTING_TOKEN_URL: url.default('https://oauth.accounting.sage.com/token'),
  SAGE_ACCOUNTING_REVOKE_URL: url.default('https://oauth.accounting.sage.com/revoke'),
  SAGE_ACCOUNTING_API_URL: url.default('https://api.accounting.sage.com/v3.1'),
  SAGE_ACCOUNTING_SCOPE: z.enum(['full_access', 'readonly']).default('readonly'),
  /** PKCE on the consent (RFC 7636): `S256` (Sage documents it for Sage Accounting, S256 preferred) or `off`. */
  SAGE_ACCOUNTING_PKCE: z.enum(['S256', 'off']).default('S256'),
  SAGE200_CLIENT_ID: optionalString,
  SAGE200_CLIENT_SECRET: optionalString,
  SAGE200_SUBSCRIPTION_KEY: optionalString,
  SAGE200_AUTH_URL: url.default('https://id.sage.com/authorize'),
  SAGE200_TOKEN_URL: url.default('https://id.sage.com/oauth/token'),
  SAGE200_REVOKE_URL: url.default('https://id.sage.com/oauth/revoke'),
  SAGE200_API_URL: url.default('https://api.columbus.sage.com/uk'),
  SAGE200_AUDIENCE: z.string().min(1).default('s200ukipd/sage200'),
  /**
   * PKCE on the Sage ID consent: `off` by default because no source we rely on confirms it for UK Sage 200 (Sage ID's
   * guides for Sage 200c show it for SPA/native apps); `S256` turns it on (see README, Consent).
   */
  SAGE200_PKCE: z.enum(['S256', 'off']).default('off'),
  NOTIFY_WEBHOOK_URL: url.optional(),
  NOTIFY_WEBHOOK_SECRET: optionalString,
  /**
   * Webhook URLs (NOTIFY_WEBHOOK_URL and each connection's notifyWebhookUrl) may not reach loopback, private or
   * link-local addresses unless this is `true` (a receiver on your own network). Checked on the resolved address.
   */
  NOTIFY_WEBHOOK_ALLOW_PRIVATE: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /**
   * The operator credential of the web server (contract §5): `Authorization: Bearer <it>`, or HTTP Basic with it as the
   * password. Required by the web server (see `requireOperatorToken`); `npm start` in demo mode generates one.
   */
  OPERATOR_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters (e.g. `openssl rand -hex 32`)')
    .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
    .optional(),
  /** The web server's listen address (contract §2); `0.0.0.0` behind a proxy or in a container. */
  WEB_HOST: z.string().min(1).default('127.0.0.1'),
  /** Cap on concurrent Sage requests from one worker process across all tenants (Sage allows 150 per app). */
  SAGE_MAX_CONCURRENCY: z.coerce.number().int().min(1).max(150).default(100),
  /**
   * Customer sync: pages of one partition fetched at once (Sage Accounting numbers its pages and says its `$total`, so
   * the pages after the first can be read ahead). Still under SAGE_MAX_CONCURRENCY, which all partitions share. 1 = one
   * page at a time, following `$next`.
   */
  SAGE_PAGE_CONCURRENCY: z.coerce.number().int().min(1).max(150).default(8),
  /** How often a full reconciliation (delete detection) runs per partition. */
  FULL_SYNC_EVERY_HOURS: z.coerce.number().positive().default(24),
  /** Customer sync: incremental runs re-read this much before the watermark (clock skew, inclusive ties, late commits). */
  SYNC_OVERLAP_SECONDS: z.coerce.number().int().min(0).max(86_400).default(300),
  /** Customer sync: heartbeat timeout of the per-partition activity (how soon a killed worker's page loop is resumed). */
  SYNC_HEARTBEAT_TIMEOUT_SECONDS: z.coerce.number().int().min(2).max(600).default(60),
  /** Customer sync page sizes: Sage Accounting `items_per_page` (max 200) and Sage 200 `$top` (max 5000). */
  SAGE_ACCOUNTING_PAGE_SIZE: z.coerce.number().int().min(1).max(200).default(200),
  SAGE200_PAGE_SIZE: z.coerce.number().int().min(1).max(5000).default(1000),
  SIM_PORT: port.default(4010),
  /** Where operators open the Temporal Web UI; the connections page and the CLI link workflows there. */
  TEMPORAL_UI_URL: url.default('http://127.0.0.1:8233').transform((v) => v.replace(/\/+$/, '')),
  /** Optional bind address for Prometheus metrics of the worker process (the web server serves its own /metrics). */
  WORKER_METRICS_PORT: port.optional(),
  /** Listen address of the worker metrics endpoint: loopback by default (its labels carry tenant ids). */
  WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  // --- Worker tuning (src/worker.ts; README "Worker tuning"). Defaults sized for ~1,000 tenants on one worker. ---
  /**
   * Workflow executions kept in the worker's sticky cache. A connection workflow is idle nearly always (the token read
   * path no longer wakes it), so caching all of them only costs memory; an evicted one is replayed from its short
   * history when it next wakes. Unset = 50: memory is per cached execution (~2.4 MB RSS each on the workflow thread,
   * bench/workflow-memory.ts), so this, not the tenant count, bounds the worker's RSS (issue 14).
   */
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(100_000).default(50),
  /** Run workflows in one reused V8 context (the SDK default; far less memory per cached workflow than one context each). */
  WORKER_REUSE_V8_CONTEXT: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  /** Activities running at once in this worker (sync partitions, refreshes, mirrors); Sage calls are capped separately. */
  WORKER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().min(1).max(10_000).default(100),
  /** Workflow tasks processed at once (the SDK default is 40; at least 2 while the sticky cache is on). */
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: z.coerce.number().int().min(2).max(10_000).default(40),
  /** How long a task waits on this worker's sticky queue before any worker may take it (and replay from history). */
  WORKER_STICKY_QUEUE_TIMEOUT_SECONDS: z.coerce.number().positive().max(600).default(10),
  /** Opt-in: log `process.memoryUsage()` and the workflow cache size every this many seconds (unset = never). */
  WORKER_MEMORY_LOG_SECONDS: z.coerce.number().int().min(1).max(3600).optional(),
  /**
   * Fault tests only (honoured when NODE_ENV=test): comma-separated crash points at which the worker process SIGKILLs
   * itself, e.g. `refresh:after-store` (see src/tokens/crash-points.ts).
   */
  TEST_CRASH_AT: z.string().optional(),
});

export type Env = z.infer<typeof EnvSchema>;
export interface Config extends Omit<Env, 'TOKEN_ENCRYPTION_KEY'> {
  /** The current token/payload encryption key (32 bytes) and its id; always present after loading. */
  encryptionKey: { id: string; key: Buffer; source: 'env' | 'dev-file' };
  oldEncryptionKeys: { id: string; key: Buffer }[];
  redirectUri: string;
}

export class ConfigError extends Error {
  constructor(public readonly issues: { variable: string; message: string }[]) {
    super(`Invalid configuration: ${issues.map((i) => `${i.variable}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Key ids are derived from the key itself so every process agrees without extra configuration. */
export function keyIdFor(key: Buffer): string {
  // A short, non-secret fingerprint: the first bytes of SHA-256(key).
  return `k-${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

export function parseConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings count as unset: `FOO= npm start` should behave like not setting FOO.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => ({ variable: String(i.path[0] ?? '?'), message: i.message })));
  }
  const e = parsed.data;
  const issues: { variable: string; message: string }[] = [];
  let encryptionKey: Config['encryptionKey'] | undefined;
  if (e.TOKEN_ENCRYPTION_KEY) {
    const key = Buffer.from(e.TOKEN_ENCRYPTION_KEY, 'base64');
    encryptionKey = { id: keyIdFor(key), key, source: 'env' };
  } else if (e.NODE_ENV !== 'production' && existsSync(DEV_KEY_FILE)) {
    const key = Buffer.from(readFileSync(DEV_KEY_FILE, 'utf8').trim(), 'base64');
    if (key.length === 32) encryptionKey = { id: keyIdFor(key), key, source: 'dev-file' };
  }
  if (!encryptionKey) {
    issues.push({
      variable: 'TOKEN_ENCRYPTION_KEY',
      message: `required (32 bytes, base64). Generate one with \`openssl rand -base64 32\`; outside production \`npm start\` writes a dev key to ${DEV_KEY_FILE}`,
    });
  }
  const oldEncryptionKeys: Config['oldEncryptionKeys'] = [];
  for (const part of (e.TOKEN_ENCRYPTION_OLD_KEYS ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    // `keyId:base64` as documented (base64 has no ':'); a bare base64 key is still accepted. Data sealed with a key
    // carries its fingerprint id, so the key is known under that id too.
    const colon = part.indexOf(':');
    const givenId = colon >= 0 ? part.slice(0, colon).trim() : null;
    const key = Buffer.from(part.slice(colon + 1).trim(), 'base64');
    if (key.length !== 32 || givenId === '') {
      issues.push({
        variable: 'TOKEN_ENCRYPTION_OLD_KEYS',
        message: 'each entry must be keyId:base64 (or base64) of a 32-byte key, comma-separated',
      });
      continue;
    }
    oldEncryptionKeys.push({ id: keyIdFor(key), key });
    if (givenId && givenId !== keyIdFor(key)) oldEncryptionKeys.push({ id: givenId, key });
  }
  for (const [id, secret] of [
    ['SAGE_ACCOUNTING_CLIENT_ID', 'SAGE_ACCOUNTING_CLIENT_SECRET'],
    ['SAGE200_CLIENT_ID', 'SAGE200_CLIENT_SECRET'],
  ] as const) {
    if (Boolean(e[id]) !== Boolean(e[secret]))
      issues.push({ variable: e[id] ? secret : id, message: `set both ${id} and ${secret}, or neither` });
  }
  if (e.NODE_ENV === 'production' && e.NOTIFY_WEBHOOK_URL && !e.NOTIFY_WEBHOOK_URL.startsWith('https:')) {
    issues.push({
      variable: 'NOTIFY_WEBHOOK_URL',
      message: 'must be an https: URL in production (the body is signed, not encrypted)',
    });
  }
  if (issues.length > 0 || !encryptionKey) throw new ConfigError(issues);
  const { TOKEN_ENCRYPTION_KEY: _omit, ...rest } = e;
  return { ...rest, encryptionKey, oldEncryptionKeys, redirectUri: `${e.PUBLIC_BASE_URL}/oauth/callback` };
}

/** The web server refuses to start without an operator credential: every route but two is an operator route. */
export function requireOperatorToken(config: Pick<Config, 'OPERATOR_TOKEN'>): string {
  if (!config.OPERATOR_TOKEN) {
    throw new ConfigError([
      {
        variable: 'OPERATOR_TOKEN',
        message:
          'required by the web server (the operator credential, at least 16 characters: `openssl rand -hex 32`); `npm start` in demo mode generates one',
      },
    ]);
  }
  return config.OPERATOR_TOKEN;
}

let cached: Config | undefined;
/**
 * Parses the process environment once; on a bad value prints the problem naming the variable and exits(78).
 * `web: true` also requires what only the web server needs (OPERATOR_TOKEN).
 */
export function loadConfig(opts: { web?: boolean } = {}): Config {
  try {
    cached ??= parseConfig(process.env);
    if (opts.web) requireOperatorToken(cached);
    return cached;
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) process.stderr.write(`config error: ${i.variable}: ${i.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}
