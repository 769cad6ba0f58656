/**
 * MongoDB access shared by activities, the web server and tests. Collection names and the deterministic `_id`s are the
 * downstream contract (contract §4). Every write in this code base is a point operation on `_id`: that is the fast path
 * on MongoDB and the only indexed lookup on the local FerretDB.
 */
import { MongoClient, type Collection, type Db, type Document } from 'mongodb';

/** Every collection this code base writes: the downstream contract first, then the internals (readers need not care). */
export const COLLECTIONS = {
  customers: 'customers',
  connections: 'connections',
  syncRuns: 'sync_runs',
  quarantine: 'quarantine',
  tokens: 'tokens',
  /** Insert-only claims that make the token store's compare-and-set single-winner on any Mongo-wire server (src/tokens/store.ts). */
  tokenClaims: 'token_claims',
  notifications: 'notifications',
  // Internals of the customer sync (src/sync/): content hashes, per-partition state, ids seen by a full run, write intents.
  customerHashes: 'customer_hashes',
  syncState: 'sync_state',
  syncSeen: 'sync_seen',
  syncWriteIntents: 'sync_write_intents',
  // The change sequence and its announcements (src/sync/change-seq.ts, src/sync/announce.ts).
  changeSeq: 'change_seq',
  changeSeqBlocks: 'change_seq_blocks',
  changeReservations: 'change_reservations',
  changeAnnouncements: 'change_announcements',
  // OAuth callbacks already answered (src/web/routes/oauth.ts), so a replayed callback is recognised.
  oauthCallbacks: 'oauth_callbacks',
} as const;

export interface Mongo {
  client: MongoClient;
  db: Db;
  collection<T extends Document = Document>(name: (typeof COLLECTIONS)[keyof typeof COLLECTIONS]): Collection<T>;
  close(): Promise<void>;
}

export async function connectMongo(uri: string, dbName: string, opts: { appName?: string } = {}): Promise<Mongo> {
  const client = new MongoClient(uri, {
    appName: opts.appName ?? 'sage-sync',
    serverSelectionTimeoutMS: 5_000,
    connectTimeoutMS: 5_000,
    // Writes are idempotent by `_id`, so retrying them after a network blip is always safe.
    retryWrites: true,
    retryReads: true,
    maxPoolSize: 50,
  });
  await client.connect();
  const db = client.db(dbName);
  return {
    client,
    db,
    collection: <T extends Document = Document>(name: string) => db.collection<T>(name),
    close: () => client.close(),
  };
}

/**
 * Creates the indexes the contract promises, idempotently. FerretDB lacks some index features; a failure there is
 * reported, not fatal, because every hot path of ours is keyed by `_id` anyway.
 */
export async function ensureIndexes(mongo: Mongo, log: (msg: string) => void = () => {}): Promise<void> {
  const specs: [string, Document, { unique?: boolean; name: string }][] = [
    [
      COLLECTIONS.customers,
      { tenantId: 1, provider: 1, partitionId: 1, externalId: 1 },
      { unique: true, name: 'customer_key' },
    ],
    // Downstream readers of changes (contract §4): `changeSeq` in (cursor, horizon], in order. On FerretDB only `_id` is
    // indexed, so there this query scans; README "Reading changes" gives the faster `_id`-prefix read per partition.
    [COLLECTIONS.customers, { tenantId: 1, provider: 1, changeSeq: 1 }, { name: 'customer_changes' }],
    [COLLECTIONS.syncRuns, { tenantId: 1, provider: 1, partitionId: 1, startedAt: -1 }, { name: 'runs_by_partition' }],
    [COLLECTIONS.connections, { state: 1 }, { name: 'connections_by_state' }],
    // Customer sync internals (src/sync/bulk-writer.ts): a full run reads one partition's content hashes at once.
    [COLLECTIONS.customerHashes, { p: 1 }, { name: 'hashes_by_partition' }],
  ];
  for (const [coll, keys, options] of specs) {
    try {
      await mongo.db.collection(coll).createIndex(keys, options);
    } catch (err) {
      log(`index ${options.name} on ${coll} not created: ${(err as Error).message}`);
    }
  }
}

export async function pingMongo(mongo: Mongo): Promise<void> {
  await mongo.db.command({ ping: 1 });
}
