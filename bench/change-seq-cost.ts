/**
 * What the change sequence (issue 15, src/sync/change-seq.ts) costs on a full sync: the same partition sync
 * (`syncPartition`, the code the activity runs, without Temporal around it) of equally sized Sage Accounting partitions
 * with and without stamping `changeSeq`, alternating (without, with, with, without, …) so warm-up and drift fall on both
 * sides. Each run writes a fresh partition (every customer new), i.e. the worst case: every record is stamped.
 * On a shared, loaded machine run-to-run noise (±20 %) is far larger than the effect, so the figure's verdict uses the
 * direct measurement: the same stamper calls a full sync of that size makes (open, one `take` per page, close), timed
 * alone against the same database, as a share of the median "with" sync. The A/B medians are reported beside it.
 */
import { COLLECTIONS } from '../src/lib/mongo.js';
import { createSageHttp } from '../src/providers/http.js';
import { customerSourceFor, pageSizeFor } from '../src/providers/index.js';
import { ChangeSeqAllocator } from '../src/sync/change-seq.js';
import { syncPartition } from '../src/sync/partition-sync.js';
import { fmt, type Figure } from './lib/report.js';
import type { SimProcess } from './lib/processes.js';
import { benchStack, serviceEnv, uniqueName } from './lib/stack.js';

const PAIRS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function changeSeqCostSection(opts: {
  sim: SimProcess;
  customers: number;
  log: (m: string) => void;
}): Promise<Figure[]> {
  const { sim, customers, log } = opts;
  await sim.admin.post('settings', { json: { sageAccounting: { accessTokenTtlSeconds: 24 * 3600 } } });
  const user = (await sim.admin
    .post('users', { json: { provider: 'sage-accounting', partitions: PAIRS * 2, customersPerPartition: customers } })
    .json()) as {
    id: string;
    partitions: { partitionId: string }[];
  };
  const grant = (await sim.admin.post('grants', { json: { provider: 'sage-accounting', userId: user.id } }).json()) as {
    token: { access_token: string };
  };
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
        {
          target: { tenantId, provider: 'sage-accounting', partition: { id: partitionId, name: 'bench' } },
          mode: 'full',
          syncWorkflowId: uniqueName('seq-run'),
        },
      );
      const secs = (performance.now() - started) / 1000;
      log(
        `change-seq: ${stampChanges ? 'with' : 'without'} stamping, ${r.summary.fetched} customers in ${secs.toFixed(1)} s`,
      );
      return secs;
    };
    const ids = user.partitions.map((p) => p.partitionId);
    const withRuns: number[] = [];
    const withoutRuns: number[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const stampFirst = i % 2 === 1;
      for (const stamp of [stampFirst, !stampFirst])
        (stamp ? withRuns : withoutRuns).push(await once(ids[2 * i + (stamp === stampFirst ? 0 : 1)]!, stamp));
    }
    const withSecs = median(withRuns);
    const withoutSecs = median(withoutRuns);
    const [a, b] = [ids[0]!, ids[1]!]; // pair 0: a without, b with

    // Direct: exactly the stamper calls of one such full sync (pages of pageSize), timed alone, median of 3.
    const pageSize = pageSizeFor('sage-accounting', stack.config);
    const directRuns: number[] = [];
    for (let r = 0; r < 3; r++) {
      const alloc = new ChangeSeqAllocator(
        stack.mongo.db,
        { tenantId: uniqueName('seqdirect'), provider: 'sage-accounting', partitionId: 'p' },
        { syncWorkflowId: 'bench', attempt: 1 },
      );
      const started = performance.now();
      for (let left = customers; left > 0; left -= pageSize) await alloc.take(Math.min(pageSize, left));
      await alloc.close();
      directRuns.push((performance.now() - started) / 1000);
    }
    const directSecs = median(directRuns);
    // (A count would scan the whole collection on FerretDB: one document of a "with" and one of a "without" run say enough.)
    const stampedDoc = await stack.mongo.collection(COLLECTIONS.customers).findOne({ tenantId, partitionId: b });
    const plainDoc = await stack.mongo.collection(COLLECTIONS.customers).findOne({ tenantId, partitionId: a });
    if (typeof stampedDoc?.changeSeq !== 'number' || plainDoc?.changeSeq !== undefined)
      throw new Error('stamping did not happen as configured');
    const abCost = withSecs / withoutSecs - 1;
    const cost = directSecs / withSecs;
    return [
      {
        section: 'change sequence',
        name: `cost of stamping changeSeq on a full sync of ${fmt.int(customers)} new customers (1 partition)`,
        ours: `${(directSecs * 1000).toFixed(0)} ms of stamping in a ${withSecs.toFixed(1)} s sync`,
        reference: `A/B medians: ${withSecs.toFixed(1)} s with, ${withoutSecs.toFixed(1)} s without (${(abCost * 100).toFixed(1)} %)`,
        ratio: `${(cost * 100).toFixed(2)} %`,
        target: '≤ 5 %',
        met: cost <= 0.05,
        note: `syncPartition without Temporal; A/B runs with ${withRuns.map((x) => x.toFixed(1)).join('/')} s, without ${withoutRuns.map((x) => x.toFixed(1)).join('/')} s (noise ≫ effect on a shared machine); direct = the stamper's calls for ${fmt.int(customers)} customers in pages of ${pageSize} (open, takes, close), timed alone, median of ${directRuns.map((x) => (x * 1000).toFixed(0)).join('/')} ms`,
      },
    ];
  } finally {
    await stack.close();
  }
}
