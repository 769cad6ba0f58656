/**
 * What the change sequence (issue 15, src/sync/change-seq.ts) costs on a full sync: the same partition sync
 * (`syncPartition`, the code the activity runs, without Temporal around it) of equally sized Sage Accounting partitions
 * with and without stamping `changeSeq`, in the order without / with / with / without so warm-up and drift fall on both
 * sides. Each run writes a fresh partition (every customer new), i.e. the worst case: every record is stamped.
 */
import { COLLECTIONS } from '../src/lib/mongo.js';
import { createSageHttp } from '../src/providers/http.js';
import { customerSourceFor, pageSizeFor } from '../src/providers/index.js';
import { syncPartition } from '../src/sync/partition-sync.js';
import { fmt, type Figure } from './lib/report.js';
import type { SimProcess } from './lib/processes.js';
import { benchStack, serviceEnv, uniqueName } from './lib/stack.js';

export async function changeSeqCostSection(opts: { sim: SimProcess; customers: number; log: (m: string) => void }): Promise<Figure[]> {
  const { sim, customers, log } = opts;
  await sim.admin.post('settings', { json: { sageAccounting: { accessTokenTtlSeconds: 24 * 3600 } } });
  const user = (await sim.admin.post('users', { json: { provider: 'sage-accounting', partitions: 4, customersPerPartition: customers } }).json()) as {
    id: string;
    partitions: { partitionId: string }[];
  };
  const grant = (await sim.admin.post('grants', { json: { provider: 'sage-accounting', userId: user.id } }).json()) as { token: { access_token: string } };
  const stack = await benchStack(serviceEnv(sim.env));
  try {
    const http = createSageHttp({ maxConcurrency: stack.config.SAGE_MAX_CONCURRENCY });
    const tenantId = uniqueName('seq');
    const once = async (partitionId: string, stampChanges: boolean) => {
      const started = performance.now();
      const r = await syncPartition(
        {
          mongo: stack.mongo,
          source: customerSourceFor('sage-accounting', http, stack.config),
          tokens: { get: async () => ({ accessToken: grant.token.access_token, tokenVersion: 1 }) },
          pageSize: pageSizeFor('sage-accounting', stack.config),
          overlapSeconds: stack.config.SYNC_OVERLAP_SECONDS,
          stampChanges,
        },
        { target: { tenantId, provider: 'sage-accounting', partition: { id: partitionId, name: 'bench' } }, mode: 'full', syncWorkflowId: uniqueName('seq-run') },
      );
      const secs = (performance.now() - started) / 1000;
      log(`change-seq: ${stampChanges ? 'with' : 'without'} stamping, ${r.summary.fetched} customers in ${secs.toFixed(1)} s`);
      return secs;
    };
    const [a, b, c, d] = user.partitions.map((p) => p.partitionId) as [string, string, string, string];
    const without1 = await once(a, false);
    const with1 = await once(b, true);
    const with2 = await once(c, true);
    const without2 = await once(d, false);
    const withSecs = (with1 + with2) / 2;
    const withoutSecs = (without1 + without2) / 2;
    // (A count would scan the whole collection on FerretDB: one document of a "with" and one of a "without" run say enough.)
    const stampedDoc = await stack.mongo.collection(COLLECTIONS.customers).findOne({ tenantId, partitionId: b });
    const plainDoc = await stack.mongo.collection(COLLECTIONS.customers).findOne({ tenantId, partitionId: a });
    if (typeof stampedDoc?.changeSeq !== 'number' || plainDoc?.changeSeq !== undefined) throw new Error('stamping did not happen as configured');
    const cost = withSecs / withoutSecs - 1;
    return [
      {
        section: 'change sequence',
        name: `cost of stamping changeSeq on a full sync of ${fmt.int(customers)} new customers (1 partition)`,
        ours: `${withSecs.toFixed(1)} s with`,
        reference: `${withoutSecs.toFixed(1)} s without`,
        ratio: `${(cost * 100).toFixed(1)} %`,
        target: '≤ 5 %',
        met: cost <= 0.05,
        note: `syncPartition without Temporal, runs without/with/with/without (${[without1, with1, with2, without2].map((s) => s.toFixed(1)).join(' / ')} s)`,
      },
    ];
  } finally {
    await stack.close();
  }
}
