/**
 * Configuration (contract §2): defaults, and a bad value stops the process with a message naming the variable — both in
 * `parseConfig` and for real entry points started as child processes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const KEY = Buffer.alloc(32, 3).toString('base64');

function issuesOf(env: Record<string, string>): { variable: string; message: string }[] {
  try {
    parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, ...env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail(`expected ${JSON.stringify(env)} to be rejected`);
}

test('defaults are the contract §2 values', () => {
  const c = parseConfig({ TOKEN_ENCRYPTION_KEY: KEY });
  assert.equal(c.TEMPORAL_ADDRESS, '127.0.0.1:7233');
  assert.equal(c.TEMPORAL_NAMESPACE, 'default');
  assert.equal(c.TEMPORAL_TASK_QUEUE, 'sage-sync');
  assert.equal(c.MONGODB_URI, 'mongodb://127.0.0.1:27017');
  assert.equal(c.MONGODB_DB, 'sage_sync');
  assert.equal(c.SAGE_PAGE_CONCURRENCY, 8, 'pages of one partition fetched at once');
  assert.equal(c.SAGE_MAX_CONCURRENCY, 100, 'Sage requests of the whole process at once (Sage allows 150 per app)');
  assert.equal(c.PORT, 3000);
  assert.equal(c.PUBLIC_BASE_URL, 'http://localhost:3000');
  assert.equal(c.redirectUri, 'http://localhost:3000/oauth/callback');
  assert.equal(c.SAGE_ACCOUNTING_AUTH_URL, 'https://www.sageone.com/oauth2/auth/central?filter=apiv3.1');
  assert.equal(c.SAGE_ACCOUNTING_TOKEN_URL, 'https://oauth.accounting.sage.com/token');
  assert.equal(c.SAGE_ACCOUNTING_REVOKE_URL, 'https://oauth.accounting.sage.com/revoke');
  assert.equal(c.SAGE_ACCOUNTING_API_URL, 'https://api.accounting.sage.com/v3.1');
  assert.equal(c.SAGE200_AUTH_URL, 'https://id.sage.com/authorize');
  assert.equal(c.SAGE200_TOKEN_URL, 'https://id.sage.com/oauth/token');
  assert.equal(c.SAGE200_REVOKE_URL, 'https://id.sage.com/oauth/revoke');
  assert.equal(c.SAGE200_API_URL, 'https://api.columbus.sage.com/uk');
  assert.equal(c.SIM_PORT, 4010);
  assert.equal(c.encryptionKey.key.length, 32);
});

test('the redirect URI is PUBLIC_BASE_URL + /oauth/callback, without a doubled slash', () => {
  assert.equal(
    parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, PUBLIC_BASE_URL: 'https://sync.example.com/' }).redirectUri,
    'https://sync.example.com/oauth/callback',
  );
});

test('an empty variable counts as unset', () => {
  assert.equal(parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, PORT: '' }).PORT, 3000);
});

const BAD: [string, Record<string, string>][] = [
  ['PORT', { PORT: 'abc' }],
  ['PORT', { PORT: '70000' }],
  ['TEMPORAL_ADDRESS', { TEMPORAL_ADDRESS: 'no-port-here' }],
  ['MONGODB_URI', { MONGODB_URI: 'postgres://x' }],
  ['MONGODB_DB', { MONGODB_DB: 'has space' }],
  ['PUBLIC_BASE_URL', { PUBLIC_BASE_URL: 'not a url' }],
  ['TOKEN_ENCRYPTION_KEY', { TOKEN_ENCRYPTION_KEY: Buffer.alloc(16).toString('base64') }],
  ['TOKEN_ENCRYPTION_OLD_KEYS', { TOKEN_ENCRYPTION_OLD_KEYS: 'short' }],
  ['SAGE_ACCOUNTING_CLIENT_SECRET', { SAGE_ACCOUNTING_CLIENT_ID: 'id-only' }],
  ['SAGE200_CLIENT_ID', { SAGE200_CLIENT_SECRET: 'secret-only' }],
  ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
  ['SAGE_MAX_CONCURRENCY', { SAGE_MAX_CONCURRENCY: '500' }],
  ['SAGE_PAGE_CONCURRENCY', { SAGE_PAGE_CONCURRENCY: '0' }],
  ['SAGE_PAGE_CONCURRENCY', { SAGE_PAGE_CONCURRENCY: 'four' }],
  ['SAGE_PAGE_CONCURRENCY', { SAGE_PAGE_CONCURRENCY: '2.5' }],
];
for (const [variable, env] of BAD) {
  test(`a bad ${variable} (${JSON.stringify(env)}) is rejected naming ${variable}`, () => {
    const issues = issuesOf(env);
    assert.ok(
      issues.some((i) => i.variable === variable),
      `issues: ${JSON.stringify(issues)}`,
    );
  });
}

test('in production a missing TOKEN_ENCRYPTION_KEY is an error (no dev-key fallback)', () => {
  assert.throws(
    () => parseConfig({ NODE_ENV: 'production' }),
    (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.variable === 'TOKEN_ENCRYPTION_KEY'),
  );
});

test('a config error message never echoes a secret value', () => {
  const secret = 'very-secret-client-secret';
  const issues = issuesOf({ SAGE_ACCOUNTING_CLIENT_SECRET: secret });
  assert.ok(!JSON.stringify(issues).includes(secret));
});

/** Runs an entry point with a clean environment plus `env`, and returns its exit code and stderr. */
function runEntry(entry: string, env: Record<string, string>, args: string[] = []) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NODE_ENV: 'test',
      TOKEN_ENCRYPTION_KEY: KEY,
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

test('the worker exits 78 naming PORT when PORT is bad', () => {
  const r = runEntry('src/worker.ts', { PORT: 'not-a-port' });
  assert.equal(r.status, 78, r.stderr);
  assert.match(r.stderr, /config error: PORT: /);
});

test('the worker exits 78 naming TEMPORAL_ADDRESS when it is bad', () => {
  const r = runEntry('src/worker.ts', { TEMPORAL_ADDRESS: 'temporal-without-port' });
  assert.equal(r.status, 78, r.stderr);
  assert.match(r.stderr, /config error: TEMPORAL_ADDRESS: must be host:port/);
});

test('the web server exits 78 naming MONGODB_URI when it is bad', () => {
  const r = runEntry('src/web/main.ts', { MONGODB_URI: 'http://not-mongo' });
  assert.equal(r.status, 78, r.stderr);
  assert.match(r.stderr, /config error: MONGODB_URI: /);
});

test('the CLI exits 78 naming the variable', () => {
  const r = runEntry('src/cli/main.ts', { TEMPORAL_NAMESPACE: '', TOKEN_ENCRYPTION_KEY: 'nope' }, ['list']);
  assert.equal(r.status, 78, r.stderr);
  assert.match(r.stderr, /config error: TOKEN_ENCRYPTION_KEY: /);
});

test('OPERATOR_TOKEN: optional for the worker and CLI, required by the web server (named), and too short a one is refused', async () => {
  const { requireOperatorToken } = await import('../../src/config.js');
  const c = parseConfig({ TOKEN_ENCRYPTION_KEY: KEY });
  assert.equal(c.OPERATOR_TOKEN, undefined);
  assert.throws(
    () => requireOperatorToken(c),
    (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.variable === 'OPERATOR_TOKEN'),
  );
  assert.ok(issuesOf({ OPERATOR_TOKEN: 'short' }).some((i) => i.variable === 'OPERATOR_TOKEN'));
  assert.ok(
    !JSON.stringify(issuesOf({ OPERATOR_TOKEN: 'has spaces in the secret value' })).includes('has spaces'),
    'the value is never echoed',
  );
  assert.equal(
    requireOperatorToken(parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, OPERATOR_TOKEN: 'x'.repeat(32) })),
    'x'.repeat(32),
  );
});

test('WEB_HOST defaults to loopback', () => {
  assert.equal(parseConfig({ TOKEN_ENCRYPTION_KEY: KEY }).WEB_HOST, '127.0.0.1');
  assert.equal(parseConfig({ TOKEN_ENCRYPTION_KEY: KEY, WEB_HOST: '0.0.0.0' }).WEB_HOST, '0.0.0.0');
});

test('in production NOTIFY_WEBHOOK_URL must be https', () => {
  assert.ok(
    issuesOf({ NODE_ENV: 'production', NOTIFY_WEBHOOK_URL: 'http://hooks.example.com/x' }).some(
      (i) => i.variable === 'NOTIFY_WEBHOOK_URL',
    ),
  );
  assert.equal(
    parseConfig({
      TOKEN_ENCRYPTION_KEY: KEY,
      NODE_ENV: 'production',
      NOTIFY_WEBHOOK_URL: 'https://hooks.example.com/x',
    }).NOTIFY_WEBHOOK_URL,
    'https://hooks.example.com/x',
  );
});

test('the web server exits 78 naming OPERATOR_TOKEN when it is missing', () => {
  const r = runEntry('src/web/main.ts', {});
  assert.equal(r.status, 78, r.stderr);
  assert.match(r.stderr, /config error: OPERATOR_TOKEN: required/);
});
