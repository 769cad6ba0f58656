/**
 * Runs the production worker entry (`src/worker.ts`) as a child process with the given environment, so fault tests can
 * SIGKILL it mid-activity like a crashed pod. Resolves `ready` once the worker logged that it started polling.
 * `launchWorkerProcess` is the one child-process worker launcher of the suite; `startFaultWorker`
 * (fault-worker.ts) runs its prebuilt-bundle entry through it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Config } from '../../src/config.js';
import { TEST_ENCRYPTION_KEY } from './env.js';

export interface SpawnedWorker {
  child: ChildProcess;
  output(): string;
  ready: Promise<void>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

/** The variables a child worker needs to join a test stack (same Temporal queue, same database, same key). */
export function workerEnvFor(config: Config, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    TEMPORAL_ADDRESS: config.TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE: config.TEMPORAL_NAMESPACE,
    TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
    MONGODB_URI: config.MONGODB_URI,
    MONGODB_DB: config.MONGODB_DB,
    TOKEN_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    // Test webhook receivers listen on loopback, which the webhook policy refuses unless allowed (as in testConfig).
    NOTIFY_WEBHOOK_ALLOW_PRIVATE: 'true',
    ...extra,
  };
}

const ROOT = path.resolve(import.meta.dirname, '..', '..');

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves once the process printed `readyLine`; rejects if it exits first or after `timeoutMs`. */
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What it printed on stdout and stderr (the last `keepOutputChars` of it when that is set). */
  output(): string;
  /** SIGKILL (or `signal`), resolved when the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL after 15 s; resolved when the process is gone. */
  stop(): Promise<void>;
}

/** Runs `entry` (a TypeScript file, through tsx, from the repository root) with only PATH, HOME and `env`. */
export function launchWorkerProcess(
  entry: string,
  env: Record<string, string>,
  opts: { readyLine: string; label: string; timeoutMs: number; keepOutputChars?: number },
): WorkerProcess {
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(ROOT, entry)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${opts.label} not ready after ${opts.timeoutMs} ms:\n${out.slice(-2000)}`)),
      opts.timeoutMs,
    );
    const onData = (d: Buffer) => {
      out += String(d);
      if (opts.keepOutputChars) out = out.slice(-opts.keepOutputChars);
      if (out.includes(opts.readyLine)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`${opts.label} exited (${e.code ?? e.signal}) before it was ready:\n${out.slice(-2000)}`));
    });
  });
  ready.catch(() => {});
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    pid: child.pid!,
    ready,
    exited,
    output: () => out,
    async kill(signal = 'SIGKILL') {
      if (!gone()) child.kill(signal);
      await exited;
    },
    async stop() {
      if (gone()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export function spawnWorker(env: Record<string, string>, timeoutMs = 120_000): SpawnedWorker {
  const w = launchWorkerProcess('src/worker.ts', env, { readyLine: 'worker started', label: 'worker', timeoutMs });
  return {
    child: w.child,
    output: w.output,
    ready: w.ready,
    exited: w.exited.then((e) => e.code),
    kill: (signal = 'SIGKILL') => void w.child.kill(signal),
  };
}
