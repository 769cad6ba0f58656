/**
 * The bench's figures and how they are printed: one row per figure, ours next to the reference measured in the same
 * run, the target and whether it was met. A figure that could not be measured says why instead of showing a number.
 */
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Figure {
  section: string;
  name: string;
  /** Our figure, formatted (or null when not measured). */
  ours: string | null;
  /** The reference measured in the same run (or what it is compared to). */
  reference: string | null;
  /** ours / reference where that is meaningful. */
  ratio?: string;
  target?: string;
  /** true = met, false = missed, null = no target or not measured. */
  met?: boolean | null;
  /** Method, caveats, or "not measured: <why>". */
  note?: string;
}

export function notMeasured(section: string, name: string, why: string, target?: string): Figure {
  return {
    section,
    name,
    ours: null,
    reference: null,
    ...(target ? { target } : {}),
    met: null,
    note: `not measured: ${why}`,
  };
}

export const fmt = {
  int: (n: number) => Math.round(n).toLocaleString('en-US'),
  num: (n: number, digits = 1) =>
    n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }),
  ms: (n: number) => `${n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US')} ms`,
  ratio: (n: number) => `${n >= 100 ? Math.round(n) : n.toFixed(2)}×`,
  mb: (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MB`,
};

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

function versionOf(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 })
        .trim()
        .split('\n')[0] ?? '?'
    );
  } catch {
    return 'unknown';
  }
}

function pkgVersion(name: string): string {
  try {
    return (
      JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as {
        version: string;
      }
    ).version;
  } catch {
    return 'unknown';
  }
}

export interface MachineInfo {
  date: string;
  host: string;
  cpus: string;
  memory: string;
  os: string;
  node: string;
  temporalCli: string;
  temporalSdk: string;
  mongoDriver: string;
  mongoServer: string;
  commit: string;
}

export function machineInfo(mongoServer: string, temporalCli: string): MachineInfo {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    host: os.hostname(),
    cpus: `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown'}`,
    memory: fmt.mb(os.totalmem()),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    temporalCli,
    temporalSdk: pkgVersion('@temporalio/worker'),
    mongoDriver: pkgVersion('mongodb'),
    mongoServer,
    commit: versionOf('git', ['rev-parse', '--short', 'HEAD']),
  };
}

export { versionOf };

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function markdownTable(figures: Figure[]): string {
  const head =
    '| section | figure | ours | reference (same run) | ratio | target | met |\n|---|---|---|---|---|---|---|';
  const rows = figures.map(
    (f) =>
      `| ${esc(f.section)} | ${esc(f.name)} | ${esc(f.ours ?? '—')} | ${esc(f.reference ?? '—')} | ${esc(f.ratio ?? '')} | ${esc(f.target ?? '')} | ${
        f.met === true ? 'yes' : f.met === false ? '**no**' : ''
      } |`,
  );
  return [head, ...rows].join('\n');
}

export function textTable(figures: Figure[]): string {
  const cols = ['section', 'figure', 'ours', 'reference', 'ratio', 'target', 'met'];
  const rows = figures.map((f) => [
    f.section,
    f.name,
    f.ours ?? '—',
    f.reference ?? '—',
    f.ratio ?? '',
    f.target ?? '',
    f.met === true ? 'yes' : f.met === false ? 'NO' : '',
  ]);
  const widths = cols.map((c, i) => Math.min(48, Math.max(c.length, ...rows.map((r) => r[i]!.length))));
  const line = (r: string[]) =>
    r.map((v, i) => (v.length > widths[i]! ? `${v.slice(0, widths[i]! - 1)}…` : v.padEnd(widths[i]!))).join('  ');
  return [line(cols), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
