/**
 * The hash writer's duplicate-key redo must only run for real duplicate-key write errors. During a MongoDB outage the
 * driver can raise a `MongoBulkWriteError` with no `writeErrors` at all; treating that as "all duplicates" made the redo
 * call `bulkWrite([])`, which throws "Batch cannot be empty" and hides the real error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MongoBulkWriteError, MongoServerError, type Collection } from 'mongodb';
import { writeCustomers, type HashDoc, type HashView, type SyncCollections } from '../../src/sync/bulk-writer.js';
import type { CustomerDoc } from '../../src/sync/documents.js';

function bulkErrorWithoutWriteErrors(): MongoBulkWriteError {
  const server = new MongoServerError({ message: 'connection reset during outage', code: 6 });
  return new MongoBulkWriteError(server, {
    insertedCount: 0,
    matchedCount: 0,
    modifiedCount: 0,
    deletedCount: 0,
    upsertedCount: 0,
    upsertedIds: {},
    insertedIds: {},
  } as never);
}

test('a MongoBulkWriteError with no writeErrors on the hash write is rethrown, not retried as an empty batch', async () => {
  const original = bulkErrorWithoutWriteErrors();
  const calls: unknown[][] = [];
  const customers = {
    bulkWrite: async () => ({ insertedCount: 1, upsertedCount: 0, modifiedCount: 0 }),
  } as unknown as Collection<CustomerDoc>;
  const hashes = {
    bulkWrite: async (ops: unknown[]) => {
      calls.push(ops);
      if (ops.length === 0) throw new TypeError('Batch cannot be empty');
      throw original;
    },
  } as unknown as Collection<HashDoc>;
  const colls: SyncCollections = { customers, hashes };
  const view: HashView = { get: async () => new Map(), remember: () => {} };
  const doc = {
    _id: 'sage-accounting:acme:p1:c1',
    provider: 'sage-accounting',
    tenantId: 'acme',
    partitionId: 'p1',
    contentHash: 'h1',
    syncedAt: new Date(),
  } as unknown as CustomerDoc;
  await assert.rejects(writeCustomers(colls, [doc], view), (err: unknown) => err === original);
  assert.equal(calls.length, 1, 'no second (empty) bulkWrite after an error without write errors');
});

test('a MongoBulkWriteError with no writeErrors on the customer write is rethrown, not counted as a success', async () => {
  const original = bulkErrorWithoutWriteErrors();
  let hashWrites = 0;
  const customers = {
    bulkWrite: async () => {
      throw original;
    },
  } as unknown as Collection<CustomerDoc>;
  const hashes = {
    bulkWrite: async () => {
      hashWrites++;
      return {};
    },
  } as unknown as Collection<HashDoc>;
  const view: HashView = { get: async () => new Map(), remember: () => {} };
  const doc = {
    _id: 'sage-accounting:acme:p1:c2',
    provider: 'sage-accounting',
    tenantId: 'acme',
    partitionId: 'p1',
    contentHash: 'h2',
    syncedAt: new Date(),
  } as unknown as CustomerDoc;
  await assert.rejects(writeCustomers({ customers, hashes }, [doc], view), (err: unknown) => err === original);
  assert.equal(hashWrites, 0, 'no hash entry for a customer that was not written');
});
