/**
 * `npm run bench`: measures the figures of issue 8 against real parts (Temporal dev server, the MongoDB-wire server,
 * the Sage simulator in its own process, production worker code), prints a table and writes BENCHMARKS.md.
 *
 * Bounded: every section has a share of a 15-minute budget; a section that cannot run (a missing piece, an error, no
 * time left) reports "not measured: <why>" instead of a number. Knobs (environment):
 *   BENCH_CUSTOMERS (100000), BENCH_CHANGESEQ_CUSTOMERS (= BENCH_CUSTOMERS), BENCH_NAIVE_SAMPLE (5000), BENCH_TENANTS (200), BENCH_ONLY (comma list of sections),
 *   BENCH_OUT (BENCHMARKS.md; `-` = stdout only).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { machineInfo, markdownTable, notMeasured, textTable, versionOf, type Figure } from './lib/report.js';
import { REPO_ROOT, startSimulatorProcess, type SimProcess } from './lib/processes.js';
import { changeSeqCostSection } from './change-seq-cost.js';
import { throughputSection } from './throughput.js';
import { tokenSections } from './tokens.js';
import { tenantsSection } from './tenants.js';

const started = Date.now();
const BUDGET_MS = 15 * 60_000;
const env = process.env;
const num = (v: string | undefined, d: number) => (v && Number.isFinite(Number(v)) ? Number(v) : d);
const customers = num(env.BENCH_CUSTOMERS, 100_000);
const naiveSample = num(env.BENCH_NAIVE_SAMPLE, 5_000);
const tenants = num(env.BENCH_TENANTS, 200);
const only = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
const out = env.BENCH_OUT ?? path.join(REPO_ROOT, 'BENCHMARKS.md');

const log = (m: string) => process.stderr.write(`[bench +${Math.round((Date.now() - started) / 1000)}s] ${m}\n`);
const remaining = () => BUDGET_MS - (Date.now() - started);

interface Section {
  id: string;
  title: string;
  /** Rough time this section needs; skipped (not measured) when less remains. */
  needsMs: number;
  run(sim: SimProcess): Promise<Figure[]>;
  /** Figures to show when the section cannot run. */
  placeholders: (why: string) => Figure[];
}

const sections: Section[] = [
  {
    id: 'throughput',
    title: 'full sync + incremental',
    needsMs: 4 * 60_000,
    run: (sim) => throughputSection({ sim, customers, naiveSample, log }),
    placeholders: (why) => [
      notMeasured('full sync', 'records/s vs raw ceiling', why, '≥ 0.80× raw'),
      notMeasured('full sync', 'records/s vs naive loop', why, '≥ 10× naive'),
      notMeasured('incremental', 'Sage calls per partition, no changes', why, '≤ 2'),
    ],
  },
  {
    id: 'changeseq',
    title: 'cost of the change sequence on a full sync',
    needsMs: 3 * 60_000,
    run: (sim) => changeSeqCostSection({ sim, customers: num(env.BENCH_CHANGESEQ_CUSTOMERS, customers), log }),
    placeholders: (why) => [notMeasured('change sequence', 'cost of stamping changeSeq on a full sync', why, '≤ 5 %')],
  },
  {
    id: 'tokens',
    title: 'refresh rate, refresh storm, history cost',
    needsMs: 5 * 60_000,
    run: (sim) => tokenSections({ sim, log, budgetMs: num(env.BENCH_TOKENS_MS, Math.min(6 * 60_000, remaining() - 5 * 60_000)) }),
    placeholders: (why) => [
      notMeasured('refresh rate', 'refreshes per hour of continuous use, 300 s tokens', why),
      notMeasured('refresh storm', '1,000 concurrent getAccessToken', why, '1 refresh'),
      notMeasured('temporal cost', 'history events per idle tenant-day', why, '≤ 5'),
    ],
  },
  {
    id: 'tenants',
    title: 'many tenants on one worker',
    needsMs: 3 * 60_000,
    run: (sim) => tenantsSection({ sim, log, tenants, budgetMs: Math.max(2 * 60_000, remaining() - 30_000) }),
    placeholders: (why) => [notMeasured('tenants', `${tenants} connected tenants, schedule lag / RSS / CPU`, why)],
  },
];

async function mongoServerVersion(): Promise<string> {
  const c = new MongoClient(env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017', { serverSelectionTimeoutMS: 5000 });
  try {
    await c.connect();
    const info = await c.db('admin').command({ buildInfo: 1 });
    const ferret = (info as { ferretdbVersion?: string }).ferretdbVersion;
    return ferret ? `FerretDB ${ferret} (MongoDB wire ${String(info.version)})` : `MongoDB ${String(info.version)}`;
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  } finally {
    await c.close().catch(() => {});
  }
}

async function main(): Promise<void> {
  const figures: Figure[] = [];
  const notes: string[] = [];
  const temporalBin = [env.TEMPORAL_CLI, `${env.SAGE_SYNC_CACHE ?? `${env.HOME}/.cache/sage-sync`}/bin/temporal`, 'temporal'].find(Boolean)!;
  const info = machineInfo(await mongoServerVersion(), versionOf(temporalBin, ['--version']));
  log(`machine: ${info.cpus}, ${info.memory}; budget 15 min`);
  for (const s of sections) {
    if (only && !only.has(s.id)) continue;
    if (remaining() < s.needsMs) {
      figures.push(...s.placeholders(`time budget exhausted (${Math.round(remaining() / 1000)} s left, section needs ~${Math.round(s.needsMs / 1000)} s)`));
      continue;
    }
    log(`section ${s.id}: ${s.title}`);
    const sim = await startSimulatorProcess();
    const t = Date.now();
    try {
      figures.push(...(await s.run(sim)));
    } catch (err) {
      log(`section ${s.id} failed: ${(err as Error).stack ?? String(err)}`);
      figures.push(...s.placeholders(`section failed: ${(err as Error).message.slice(0, 300)}`));
    } finally {
      await sim.close();
    }
    notes.push(`- ${s.title}: ${Math.round((Date.now() - t) / 1000)} s`);
  }
  const total = Math.round((Date.now() - started) / 1000);
  process.stdout.write(`\n${textTable(figures)}\n\n`);
  for (const f of figures) if (f.note) process.stdout.write(`* ${f.section} / ${f.name}: ${f.note}\n`);
  const md = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (bench/main.ts) from one run; every reference figure was measured in that same run, on the',
    'same machine, against the same Temporal dev server, MongoDB-wire server and Sage simulator process. A missing figure',
    'says why it was not measured.',
    '',
    '## Machine and versions',
    '',
    `- date: ${info.date}`,
    `- machine: ${info.cpus}, ${info.memory} RAM, ${info.os}`,
    `- Node ${info.node}; Temporal SDK ${info.temporalSdk}; Temporal CLI/dev server ${info.temporalCli}`,
    `- MongoDB driver ${info.mongoDriver}; server ${info.mongoServer}`,
    `- commit ${info.commit}; total bench time ${total} s (budget 900 s)`,
    '',
    '## Figures',
    '',
    markdownTable(figures),
    '',
    '## Method and notes',
    '',
    ...figures.filter((f) => f.note).map((f) => `- **${f.section} / ${f.name}**: ${f.note}`),
    '',
    '## Section times',
    '',
    ...notes,
    '',
  ].join('\n');
  if (out !== '-') {
    writeFileSync(out, md);
    log(`wrote ${out}`);
  }
  log(`done in ${total} s`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
