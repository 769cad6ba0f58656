/**
 * `/healthz` (contract §5): 200 only when both Temporal and MongoDB answer; 503 naming the one that is down. The "down"
 * servers are real clients pointed at a port where nothing listens.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { createLogger } from '../../src/lib/logger.js';
import type { Mongo } from '../../src/lib/mongo.js';
import { buildServer } from '../../src/web/server.js';
import { testStack, type TestStack } from '../helpers/env.js';

let stack: TestStack;
const closers: (() => Promise<unknown>)[] = [];
const log = createLogger({ level: 'silent' });

/** A port with nothing listening: bound, then released. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function mongoAt(uri: string, dbName: string): Mongo {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 1_000, connectTimeoutMS: 1_000 });
  const db = client.db(dbName);
  return { client, db, collection: (name) => db.collection(name), close: () => client.close() };
}

async function healthOf(deps: Parameters<typeof buildServer>[0]) {
  const app = await buildServer(deps);
  closers.push(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/healthz' });
  return { status: res.statusCode, body: res.json() as { status: string; temporal: string; mongodb: string } };
}

before(async () => {
  stack = await testStack();
});
after(async () => {
  for (const c of closers) await c().catch(() => {});
  await stack?.close();
});

test('200 when Temporal and MongoDB both answer', async () => {
  const r = await healthOf({ config: stack.config, client: stack.client, mongo: stack.mongo, log });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ok', temporal: 'ok', mongodb: 'ok' });
});

test('503 naming MongoDB when MongoDB is unreachable', async () => {
  const mongo = mongoAt(`mongodb://127.0.0.1:${await deadPort()}`, stack.config.MONGODB_DB);
  closers.push(() => mongo.close());
  const r = await healthOf({ config: stack.config, client: stack.client, mongo, log });
  assert.equal(r.status, 503);
  assert.equal(r.body.status, 'unavailable');
  assert.equal(r.body.temporal, 'ok');
  assert.match(r.body.mongodb, /^down: /);
});

test('503 naming Temporal when Temporal is unreachable', async () => {
  const connection = Connection.lazy({ address: `127.0.0.1:${await deadPort()}`, connectTimeout: '1s' });
  closers.push(() => connection.close());
  const client = new Client({ connection, namespace: stack.config.TEMPORAL_NAMESPACE });
  const r = await healthOf({ config: stack.config, client, mongo: stack.mongo, log });
  assert.equal(r.status, 503);
  assert.match(r.body.temporal, /^down: /);
  assert.equal(r.body.mongodb, 'ok');
});
