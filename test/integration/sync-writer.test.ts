/** The page writer against the real MongoDB-wire server (FerretDB): skip by hash, and a stale view never breaks a write. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { COLLECTIONS, connectMongo, type Mongo } from '../../src/lib/mongo.js';
import {
  CUSTOMER_HASHES,
  PreloadedHashes,
  writeCustomers,
  type HashDoc,
  type HashView,
  type SyncCollections,
} from '../../src/sync/bulk-writer.js';
import type { CustomerDoc } from '../../src/sync/documents.js';
import { testCustomerDoc } from '../helpers/customers.js';
import { testConfig } from '../helpers/env.js';

let mongo: Mongo;
let colls: SyncCollections;
before(async () => {
  const config = testConfig();
  mongo = await connectMongo(config.MONGODB_URI, config.MONGODB_DB);
  colls = {
    customers: mongo.collection<CustomerDoc>(COLLECTIONS.customers),
    hashes: mongo.db.collection<HashDoc>(CUSTOMER_HASHES),
  };
});
after(async () => {
  await mongo.db.dropDatabase();
  await mongo.close();
});

const key = { tenantId: 'w', provider: 'sage-200' as const, partitionId: '7' };
const doc = (id: number, v: number) =>
  testCustomerDoc(key, id, v, { id, name: `c${id}`, v, $path: `/customers/${id}` });
/** A view that believes nothing is stored (as after a crash between the customer write and its hash entry). */
const blind: HashView = { get: async () => new Map(), remember: () => {} };

test('new → inserted; same again → unchanged; changed → modified; raw keeps `$path` (as ＄path)', async () => {
  const view = await PreloadedHashes.load(colls.hashes, key);
  assert.deepEqual(await writeCustomers(colls, [doc(1, 1), doc(2, 1)], view), {
    upserted: 2,
    modified: 0,
    unchanged: 0,
  });
  assert.deepEqual(await writeCustomers(colls, [doc(1, 1), doc(2, 1)], view), {
    upserted: 0,
    modified: 0,
    unchanged: 2,
  });
  assert.deepEqual(await writeCustomers(colls, [doc(1, 2), doc(2, 1)], await PreloadedHashes.load(colls.hashes, key)), {
    upserted: 0,
    modified: 1,
    unchanged: 1,
  });
  const stored = await colls.customers.findOne({ _id: 'sage-200:w:7:1' });
  assert.equal((stored?.raw as Record<string, unknown>)['\uFF04path'], '/customers/1');
});

test('a stale view: inserts meet existing ids (duplicate key on FerretDB too) and are redone as replace-if-changed', async () => {
  assert.deepEqual(await writeCustomers(colls, [doc(1, 2), doc(2, 3), doc(3, 1)], blind), {
    upserted: 1,
    modified: 1,
    unchanged: 0,
  });
  assert.equal(await colls.customers.countDocuments({ tenantId: 'w' }), 3);
  assert.equal(
    (await colls.hashes.findOne({ _id: 'sage-200:w:7:2' }))?.h,
    doc(2, 3).contentHash,
    'hash entry follows the customer',
  );
});
