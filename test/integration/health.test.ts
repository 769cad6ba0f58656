/**
 * `/healthz` (contract §5): 200 only when both Temporal and MongoDB answer; 503 naming the one that is down. MongoDB is
 * "down" at a port where nothing listens; Temporal goes away behind a relay that is cut after the client connected.
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
import { freePort } from '../helpers/ports.js';

let stack: TestStack;
const closers: (() => Promise<unknown>)[] = [];
const log = createLogger({ level: 'silent' });

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
  const mongo = mongoAt(`mongodb://127.0.0.1:${await freePort()}`, stack.config.MONGODB_DB);
  closers.push(() => mongo.close());
  const r = await healthOf({ config: stack.config, client: stack.client, mongo, log });
  assert.equal(r.status, 503);
  assert.equal(r.body.status, 'unavailable');
  assert.equal(r.body.temporal, 'ok');
  assert.match(r.body.mongodb, /^down: /);
});

/**
 * A TCP relay to the real Temporal server that can be cut: the client connects through it while Temporal is reachable,
 * then the relay drops every socket and stops listening, as when the server or the network goes away.
 */
async function cuttableRelay(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    async cut() {
      await new Promise((r) => {
        server.close(r);
        for (const s of sockets) s.destroy();
      });
    },
  };
}

test('503 naming Temporal when Temporal becomes unreachable', async () => {
  const [host = '127.0.0.1', port = '7233'] = stack.config.TEMPORAL_ADDRESS.split(':');
  const relay = await cuttableRelay({ host, port: Number(port) });
  // No gRPC retry interceptor on this test-only connection: the SDK's default one keeps retrying UNAVAILABLE on timers,
  // and a retry firing after the test closed the connection throws "Channel has been shut down" into a later test.
  const connection = await Connection.connect({ address: relay.address, connectTimeout: '5s', interceptors: [] });
  closers.push(() => connection.close());
  const client = new Client({ connection, namespace: stack.config.TEMPORAL_NAMESPACE });
  const up = await healthOf({ config: stack.config, client, mongo: stack.mongo, log });
  assert.equal(up.status, 200, 'healthy while the relay is up');
  await relay.cut();
  const r = await healthOf({ config: stack.config, client, mongo: stack.mongo, log });
  assert.equal(r.status, 503);
  assert.match(r.body.temporal, /^down: /);
  assert.equal(r.body.mongodb, 'ok');
});
