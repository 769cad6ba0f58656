/**
 * Runs the production worker entry (`src/worker.ts`) as a child process with the given environment, so fault tests can
 * SIGKILL it mid-activity like a crashed pod. Resolves `ready` once the worker logged that it started polling.
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

export function spawnWorker(env: Record<string, string>, timeoutMs = 120_000): SpawnedWorker {
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, '..', '..', 'src', 'worker.ts')], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready after ${timeoutMs} ms:\n${out.slice(-2000)}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += String(d);
      if (out.includes('worker started')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before it was ready:\n${out.slice(-2000)}`));
    });
  });
  ready.catch(() => {});
  return { child, output: () => out, ready, exited, kill: (signal = 'SIGKILL') => void child.kill(signal) };
}
