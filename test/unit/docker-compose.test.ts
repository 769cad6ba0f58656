/**
 * docker-compose.yml is the documented way to a production-shaped stack; nobody here can run Docker, so this test pins
 * its syntax and shape: the services, the MongoDB replica set and health checks, and the contract §2 environment of the
 * worker and web services.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseDocument } from 'yaml';

const file = path.resolve(import.meta.dirname, '..', '..', 'docker-compose.yml');
const doc = parseDocument(readFileSync(file, 'utf8'), { merge: true });

interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string };
}
const compose = doc.toJS({ maxAliasCount: 100 }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const svc = (name: string): Service => {
  const s = compose.services[name];
  assert.ok(s, `service ${name} is missing`);
  return s;
};

test('the file parses as YAML without errors or warnings', () => {
  assert.deepEqual(
    doc.errors.map((e) => e.message),
    [],
  );
  assert.deepEqual(
    doc.warnings.map((e) => e.message),
    [],
  );
});

test('it has temporal, temporal-ui, mongo, worker and web services', () => {
  for (const name of ['temporal', 'temporal-ui', 'mongo', 'worker', 'web']) svc(name);
});

test('MongoDB runs as a replica set with a health check that initiates it', () => {
  const mongo = svc('mongo');
  const command = Array.isArray(mongo.command) ? mongo.command.join(' ') : String(mongo.command);
  assert.match(command, /--replSet\s+rs0/);
  const check = Array.isArray(mongo.healthcheck?.test)
    ? mongo.healthcheck.test.join(' ')
    : String(mongo.healthcheck?.test);
  assert.match(check, /rs\.initiate/);
  assert.match(check, /rs\.status/);
});

test('Temporal has a health check, registers the search attributes, and the UI uses our codec server', () => {
  assert.ok(svc('temporal').healthcheck, 'temporal healthcheck');
  const setup = JSON.stringify(compose.services['temporal-setup'] ?? {});
  for (const sa of ['TenantId', 'SageProvider', 'ConnectionState'])
    assert.ok(setup.includes(sa), `search attribute ${sa} is registered`);
  assert.match(setup, /Keyword/);
  const ui = svc('temporal-ui').environment ?? {};
  assert.equal(ui.TEMPORAL_ADDRESS, 'temporal:7233');
  assert.match(ui.TEMPORAL_CODEC_ENDPOINT ?? '', /\/codec$/);
  // The codec routes are operator routes: the UI's codec fetch must carry the browser's login (contract §5).
  assert.equal(String(ui.TEMPORAL_CODEC_INCLUDE_CREDENTIALS), 'true');
});

test('the web service gets the operator credential from the environment, listens beyond loopback, and knows the UI origin', () => {
  const env = svc('web').environment ?? {};
  assert.match(env.OPERATOR_TOKEN ?? '', /^\$\{OPERATOR_TOKEN:\?/, 'compose refuses to start without OPERATOR_TOKEN');
  assert.equal(env.WEB_HOST, '0.0.0.0');
  assert.match(env.TEMPORAL_UI_URL ?? '', /^\$\{TEMPORAL_UI_URL:-http:\/\/localhost:8233\}$/);
  assert.equal(env.NODE_ENV, 'production', 'and still the shared production environment');
});

test('worker and web get the contract §2 environment, pointing at the compose services', () => {
  for (const name of ['worker', 'web']) {
    const s = svc(name);
    const env = s.environment ?? {};
    assert.equal(env.TEMPORAL_ADDRESS, 'temporal:7233', `${name} TEMPORAL_ADDRESS`);
    assert.equal(env.TEMPORAL_NAMESPACE, 'default');
    assert.equal(env.TEMPORAL_TASK_QUEUE, 'sage-sync');
    assert.match(env.MONGODB_URI ?? '', /^mongodb:\/\/mongo:27017\/\?replicaSet=rs0$/);
    assert.equal(env.MONGODB_DB, 'sage_sync');
    assert.equal(env.NODE_ENV, 'production');
    for (const v of [
      'TOKEN_ENCRYPTION_KEY',
      'PUBLIC_BASE_URL',
      'SAGE_ACCOUNTING_CLIENT_ID',
      'SAGE_ACCOUNTING_CLIENT_SECRET',
      'SAGE200_CLIENT_ID',
      'SAGE200_CLIENT_SECRET',
      'SAGE200_SUBSCRIPTION_KEY',
    ]) {
      assert.ok(v in env, `${name} lacks ${v}`);
    }
    // The key must come from the operator's environment, and compose must refuse to start without it.
    assert.match(env.TOKEN_ENCRYPTION_KEY ?? '', /^\$\{TOKEN_ENCRYPTION_KEY:\?/);
    assert.ok(s.build, `${name} builds this repository`);
    assert.equal(s.depends_on?.mongo?.condition, 'service_healthy', `${name} waits for a healthy replica set`);
  }
  assert.ok(
    (svc('web').ports ?? []).some((p) => String(p).endsWith(':3000')),
    'web publishes port 3000',
  );
});

test('no secret value is written into the file: secrets and keys are ${...} interpolations of the environment', () => {
  for (const name of ['worker', 'web']) {
    for (const [k, v] of Object.entries(svc(name).environment ?? {})) {
      if (/SECRET|_KEY$/.test(k))
        assert.match(String(v), /^\$\{[A-Z0-9_]+(:[-?][^}]*)?\}$/, `${name} ${k} must come from the environment`);
    }
  }
});
