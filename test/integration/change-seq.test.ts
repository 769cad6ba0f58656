/**
 * The change sequence's horizon under every interleaving of two partition writers and one reader, against the real
 * FerretDB (no transactions there: the protocol is single-document atomic operations; src/sync/change-seq.ts).
 *
 * Steps: writer = open (reservation) → take (allocate from the counter) → close (after its writes committed);
 * reader = read counter → read reservations. Invariant: a writer that closes after the reader finished (its change is
 * committed after the horizon was computed) holds a number above that horizon. Also: numbers are never reused, a
 * crashed attempt's reservation holds the horizon back until the partition's next attempt replaces it, and reading in
 * the wrong order (reservations first) would break the invariant: the checker can fail.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Db } from 'mongodb';
import { COLLECTIONS, connectMongo, type Mongo } from '../../src/lib/mongo.js';
import { CUSTOMER_HASHES, PreloadedHashes, writeCustomers, type HashDoc } from '../../src/sync/bulk-writer.js';
import { flagDeleted } from '../../src/sync/deletions.js';
import type { CustomerDoc } from '../../src/sync/documents.js';
import {
  BLOCK_SIZE,
  ChangeSeqAllocator,
  horizonOf,
  readCounter,
  readFloors,
  readHorizon,
  type ConnectionKey,
} from '../../src/sync/change-seq.js';
import { testCustomerDoc } from '../helpers/customers.js';
import { uniqueName } from '../helpers/env.js';

let mongo: Mongo;
before(async () => {
  mongo = await connectMongo(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017', uniqueName('test_changeseq'));
});
after(async () => {
  await mongo?.db.dropDatabase().catch(() => {});
  await mongo?.close();
});

type Step = { actor: 'A' | 'B' | 'R'; i: number };

/** Every interleaving of the actors' step sequences (order within an actor kept). */
function interleavings(lengths: Record<'A' | 'B' | 'R', number>): Step[][] {
  const out: Step[][] = [];
  const walk = (done: Record<string, number>, acc: Step[]) => {
    let progressed = false;
    for (const actor of ['A', 'B', 'R'] as const) {
      if (done[actor]! < lengths[actor]) {
        progressed = true;
        walk({ ...done, [actor]: done[actor]! + 1 }, [...acc, { actor, i: done[actor]! }]);
      }
    }
    if (!progressed) out.push(acc);
  };
  walk({ A: 0, B: 0, R: 0 }, []);
  return out;
}

/** Runs one interleaving on a fresh connection; returns the violations found (empty = safe). */
async function runInterleaving(
  db: Db,
  order: Step[],
  readerOrder: 'counter-first' | 'reservations-first',
): Promise<string[]> {
  const conn: ConnectionKey = { tenantId: uniqueName('il'), provider: 'sage-accounting' };
  const writers = {
    A: {
      alloc: new ChangeSeqAllocator(db, { ...conn, partitionId: 'pA' }, { syncWorkflowId: 'run', attempt: 1 }),
      seq: null as number | null,
      closedAt: -1,
    },
    B: {
      alloc: new ChangeSeqAllocator(db, { ...conn, partitionId: 'pB' }, { syncWorkflowId: 'run', attempt: 1 }),
      seq: null as number | null,
      closedAt: -1,
    },
  };
  let counter = 0;
  let floors: number[] = [];
  let readerDoneAt = -1;
  for (const [t, s] of order.entries()) {
    if (s.actor === 'R') {
      const first = readerOrder === 'counter-first' ? 0 : 1;
      if (s.i === first) counter = await readCounter(db, conn);
      else floors = await readFloors(db, conn);
      if (s.i === 1) readerDoneAt = t;
      continue;
    }
    const w = writers[s.actor];
    if (s.i === 0) await w.alloc.open();
    else if (s.i === 1) w.seq = (await w.alloc.take(1))[0]!;
    else {
      await w.alloc.close();
      w.closedAt = t;
    }
  }
  const h = horizonOf(counter, floors);
  const violations: string[] = [];
  for (const [name, w] of Object.entries(writers)) {
    if (w.closedAt > readerDoneAt && w.seq !== null && w.seq <= h)
      violations.push(`${name} committed ${w.seq} after horizon ${h} was read`);
  }
  if (writers.A.seq === writers.B.seq) violations.push(`number ${writers.A.seq} handed out twice`);
  const final = await readHorizon(db, conn);
  const end = await readCounter(db, conn);
  if (final !== end) violations.push(`after every writer closed the horizon is ${final}, not the counter ${end}`);
  return violations;
}

test('two partitions writing at once never let a horizon pass an uncommitted change (every interleaving)', async (t) => {
  const all = interleavings({ A: 3, B: 3, R: 2 });
  assert.equal(all.length, 560);
  const failures: string[] = [];
  // Each interleaving runs its steps strictly in order on its own connection, so several can run side by side.
  for (let i = 0; i < all.length; i += 10) {
    await Promise.all(
      all.slice(i, i + 10).map(async (order) => {
        const v = await runInterleaving(mongo.db, order, 'counter-first');
        if (v.length) failures.push(`${order.map((s) => `${s.actor}${s.i}`).join(' ')}: ${v.join('; ')}`);
      }),
    );
  }
  t.diagnostic(`${all.length} interleavings checked`);
  assert.deepEqual(failures.slice(0, 5), []);
});

test('the checker can fail: reading reservations before the counter lets a horizon pass an uncommitted change', async () => {
  // R0 = reservations (none yet), then A opens and allocates, then R1 = counter (sees A's number), then A commits.
  const order: Step[] = [
    { actor: 'R', i: 0 },
    { actor: 'A', i: 0 },
    { actor: 'A', i: 1 },
    { actor: 'R', i: 1 },
    { actor: 'A', i: 2 },
    { actor: 'B', i: 0 },
    { actor: 'B', i: 1 },
    { actor: 'B', i: 2 },
  ];
  const v = await runInterleaving(mongo.db, order, 'reservations-first');
  assert.ok(
    v.some((x) => x.startsWith('A committed')),
    `expected a violation, got ${JSON.stringify(v)}`,
  );
  assert.deepEqual(
    await runInterleaving(mongo.db, order, 'counter-first'),
    [],
    'the real order is safe on the same schedule',
  );
});

test('a crashed attempt holds the horizon back until the retry replaces its reservation; no number is reused', async () => {
  const conn: ConnectionKey = { tenantId: uniqueName('crash'), provider: 'sage-200' };
  const key = { ...conn, partitionId: '7' };
  const dead = new ChangeSeqAllocator(mongo.db, key, { syncWorkflowId: 'run', attempt: 1 });
  assert.deepEqual(await dead.take(3), [1, 2, 3]); // block 1; "committed" some, then SIGKILL: no close
  const other = new ChangeSeqAllocator(mongo.db, { ...conn, partitionId: '8' }, { syncWorkflowId: 'run', attempt: 1 });
  assert.deepEqual(await other.take(2), [BLOCK_SIZE + 1, BLOCK_SIZE + 2]); // block 2
  await other.close();
  assert.equal(
    await readHorizon(mongo.db, conn),
    0,
    'the dead reservation (floor 1) holds the horizon below its numbers',
  );
  const retry = new ChangeSeqAllocator(mongo.db, key, { syncWorkflowId: 'run', attempt: 2 });
  const again = await retry.take(2);
  assert.deepEqual(
    again,
    [2 * BLOCK_SIZE + 1, 2 * BLOCK_SIZE + 2],
    'the retry takes fresh numbers above every block handed out',
  );
  assert.equal(
    await readHorizon(mongo.db, conn),
    2 * BLOCK_SIZE,
    'the replaced reservation no longer holds back the dead attempt, only the retry',
  );
  await retry.close();
  assert.equal(await readHorizon(mongo.db, conn), 3 * BLOCK_SIZE);
});

test('many partitions allocating at once on FerretDB: every number handed out once, blocks 1..K without holes', async () => {
  // FerretDB's $inc is read-modify-write (lost updates under concurrency); the insert-per-block scheme must not be.
  const conn: ConnectionKey = { tenantId: uniqueName('race'), provider: 'sage-accounting' };
  const allocs = Array.from(
    { length: 8 },
    (_, i) => new ChangeSeqAllocator(mongo.db, { ...conn, partitionId: `p${i}` }, { syncWorkflowId: 'r', attempt: 1 }),
  );
  const all: number[] = [];
  for (let round = 0; round < 4; round++) {
    const got = await Promise.all(allocs.map((a) => a.take(BLOCK_SIZE / 2 + 1))); // each take crosses into a new block
    for (const g of got) all.push(...g);
  }
  assert.equal(new Set(all).size, all.length, 'no number handed out twice');
  const counter = await readCounter(mongo.db, conn);
  assert.ok(
    all.every((n) => n >= 1 && n <= counter),
    'the counter covers every number handed out',
  );
  const blocks = new Set(all.map((n) => Math.ceil(n / BLOCK_SIZE)));
  assert.deepEqual(
    [...blocks].sort((a, b) => a - b),
    Array.from({ length: counter / BLOCK_SIZE }, (_, i) => i + 1),
    'blocks 1..K, no holes',
  );
});

test('the writers stamp exactly what they change: new, changed, stale-view redo, undelete, deletion flag; the rest keep theirs', async () => {
  const key = { tenantId: uniqueName('w'), provider: 'sage-200' as const, partitionId: '7' };
  const colls = {
    customers: mongo.db.collection<CustomerDoc>(COLLECTIONS.customers),
    hashes: mongo.db.collection<HashDoc>(CUSTOMER_HASHES),
  };
  const doc = (id: number, v: number) => testCustomerDoc(key, id, v);
  const seqOf = async () =>
    new Map((await colls.customers.find({ tenantId: key.tenantId }).toArray()).map((d) => [d.externalId, d.changeSeq]));
  const stamper = new ChangeSeqAllocator(mongo.db, key, { syncWorkflowId: 'w', attempt: 1 });

  await writeCustomers(
    colls,
    [doc(1, 1), doc(2, 1), doc(3, 1)],
    await PreloadedHashes.load(colls.hashes, key),
    stamper,
  );
  const s1 = await seqOf();
  assert.deepEqual([...s1.values()].sort(), [1, 2, 3], 'new customers: fresh numbers');

  await writeCustomers(
    colls,
    [doc(1, 1), doc(2, 2), doc(3, 1)],
    await PreloadedHashes.load(colls.hashes, key),
    stamper,
  );
  const s2 = await seqOf();
  assert.equal(s2.get('1'), s1.get('1'), 'unchanged keeps its number');
  assert.ok(s2.get('2')! > 3, 'changed gets a fresh, higher number');

  // A stale view (all looks new): the insert meets the stored document and is redone as a replace only if it differs.
  const blind = { get: async () => new Map(), remember: () => {} };
  await writeCustomers(colls, [doc(1, 1), doc(3, 9)], blind, stamper);
  const s3 = await seqOf();
  assert.equal(s3.get('1'), s2.get('1'), 'stale-view redo of an unchanged customer keeps its number');
  assert.ok(s3.get('3')! > s2.get('2')!, 'stale-view redo of a changed customer: fresh number');

  await flagDeleted(colls, [`${key.provider}:${key.tenantId}:${key.partitionId}:1`], new Date(), undefined, stamper);
  const s4 = await seqOf();
  assert.ok(s4.get('1')! > s3.get('3')!, 'deletion flag: fresh number');
  await flagDeleted(colls, [`${key.provider}:${key.tenantId}:${key.partitionId}:1`], new Date(), undefined, stamper);
  assert.equal((await seqOf()).get('1'), s4.get('1'), 'flagging again is a no-op and keeps the number');

  await writeCustomers(colls, [doc(1, 1)], await PreloadedHashes.load(colls.hashes, key), stamper);
  const s5 = await seqOf();
  assert.ok(s5.get('1')! > s4.get('1')!, 'undelete (same content, was deleted): fresh number');
  await stamper.close();
  const all = [...s5.values()];
  assert.equal(new Set(all).size, all.length);
});
