/**
 * Child processes the bench (and the fault suite) run: the Sage simulator and the production worker entry
 * (`src/worker.ts`), each in its own process as in production, so the figures include real IPC and real CPU contention,
 * and so the worker's RSS and CPU can be read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import got from 'got';
import { freePort } from '../../test/helpers/ports.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** Last lines of stderr/stdout, for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

export function spawnTs(
  entry: string,
  env: Record<string, string | undefined>,
  opts: { label: string; onLine?: (line: string) => void } = { label: 'child' },
): Child {
  // A compiled entry (lib/*.js) runs on plain Node, as in production: no tsx loader in the process (its transpile cache
  // and source maps are ~50 MB of RSS that production never carries).
  const args = entry.endsWith('.js') ? [entry] : ['--import', 'tsx', entry];
  const proc = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const onData = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) {
      if (!line) continue;
      lines.push(line);
      if (lines.length > 40) lines.shift();
      opts.onLine?.(line);
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  return {
    proc,
    pid: proc.pid!,
    tail: () => lines.join('\n'),
    exited,
    async stop(graceMs = 15_000) {
      if (gone()) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
    async kill() {
      if (gone()) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** Resident set size and total CPU time (user + system) of a process, from /proc (Linux). */
export function procStats(pid: number): { rssBytes: number; cpuSeconds: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" of the command name: utime is field 14, stime 15 (1-based over the whole line).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    return { rssBytes: rssKb * 1024, cpuSeconds: ticks / 100 };
  } catch {
    return null;
  }
}

export interface SimProcess {
  url: string;
  port: number;
  env: Record<string, string>;
  admin: typeof got;
  child: Child;
  close(): Promise<void>;
}

/** Starts `src/simulator/main.ts` on a free port and waits until its admin API answers. */
export async function startSimulatorProcess(env: Record<string, string> = {}): Promise<SimProcess> {
  const port = await freePort();
  const child = spawnTs(
    'src/simulator/main.ts',
    { SIM_PORT: String(port), LOG_LEVEL: 'warn', ...env },
    { label: 'simulator' },
  );
  const url = `http://127.0.0.1:${port}`;
  const admin = got.extend({
    prefixUrl: `${url}/__admin`,
    responseType: 'json',
    timeout: { request: 120_000 },
    retry: { limit: 0 },
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await got(`${url}/`, { timeout: { request: 1000 }, retry: { limit: 0 } });
      break;
    } catch {
      if (child.proc.exitCode !== null) throw new Error(`simulator exited: ${child.tail()}`);
      if (Date.now() > deadline) throw new Error(`simulator did not start: ${child.tail()}`);
      await sleep(200);
    }
  }
  const simEnv = {
    SAGE_ACCOUNTING_AUTH_URL: `${url}/sage-accounting/oauth2/auth/central?filter=apiv3.1`,
    SAGE_ACCOUNTING_TOKEN_URL: `${url}/sage-accounting/token`,
    SAGE_ACCOUNTING_REVOKE_URL: `${url}/sage-accounting/revoke`,
    SAGE_ACCOUNTING_API_URL: `${url}/sage-accounting/v3.1`,
    SAGE200_AUTH_URL: `${url}/sage200/authorize`,
    SAGE200_TOKEN_URL: `${url}/sage200/oauth/token`,
    SAGE200_REVOKE_URL: `${url}/sage200/oauth/revoke`,
    SAGE200_API_URL: `${url}/sage200/api/uk`,
  };
  return { url, port, env: simEnv, admin, child, close: () => child.stop(5_000) };
}

/**
 * Starts the production worker entry with `env` (`src/worker.ts` under tsx, or the compiled `lib/worker.js` that
 * `npm run build` writes); resolves once it polls its task queue.
 */
export async function startWorkerProcess(
  env: Record<string, string>,
  timeoutMs = 120_000,
  entry = 'src/worker.ts',
  onLine?: (line: string) => void,
): Promise<Child> {
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const child = spawnTs(
    entry,
    { ...env, LOG_LEVEL: 'info' },
    {
      label: 'worker',
      onLine: (l) => {
        if (l.includes('worker started')) ready();
        onLine?.(l);
      },
    },
  );
  const outcome = await Promise.race([
    isReady.then(() => 'ready' as const),
    child.exited.then(() => 'exited' as const),
    sleep(timeoutMs).then(() => 'timeout' as const),
  ]);
  if (outcome !== 'ready') {
    await child.kill();
    throw new Error(`worker did not start (${outcome}): ${child.tail()}`);
  }
  return child;
}
