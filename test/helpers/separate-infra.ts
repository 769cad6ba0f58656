/**
 * A SEPARATE Temporal dev server or FerretDB for the fault tests that restart or cut them, started by the project's own
 * infra scripts on free ports with their own data directory. The shared servers (7233, 27017) are never touched:
 * `down.sh` stops only pids recorded under this data directory.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, portOpen, releasePort } from './ports.js';

const run = promisify(execFile);
const SCRIPTS = path.resolve(import.meta.dirname, '..', '..', 'scripts', 'infra');

function sharedTemporalPort(): string {
  return (process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233').split(':')[1] ?? '7233';
}

export interface SeparateInfra {
  env: Record<string, string>;
  dataDir: string;
  up(): Promise<void>;
  down(what: 'temporal' | 'mongo'): Promise<void>;
  /** Stops only the FerretDB process (PostgreSQL keeps running): a MongoDB-wire outage. */
  stopFerret(): Promise<void>;
  destroy(): Promise<void>;
}

async function script(name: 'up.sh' | 'down.sh', env: Record<string, string>, args: string[] = []): Promise<void> {
  await run('bash', [path.join(SCRIPTS, name), ...args], {
    env: { ...process.env, ...env },
    timeout: 180_000,
    maxBuffer: 10 * 1024 * 1024,
  });
}

/** A Temporal dev server with a database file (state survives a restart) on free ports; Mongo stays the shared one. */
export async function separateTemporal(): Promise<SeparateInfra & { address: string }> {
  const port = await freePort();
  const uiPort = await freePort();
  const dataDir = `/var/tmp/sage-sync-faults-temporal-${port}`;
  const env = {
    SAGE_SYNC_DATA: dataDir,
    TEMPORAL_PORT: String(port),
    TEMPORAL_UI_PORT: String(uiPort),
    TEMPORAL_EPHEMERAL: '0',
    MONGODB_URI: process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017',
  };
  return { ...infra(env, dataDir), address: `127.0.0.1:${port}` };
}

/** A FerretDB (own PostgreSQL cluster) on free ports; Temporal stays the shared one. */
export async function separateMongo(): Promise<SeparateInfra & { uri: string }> {
  const mongoPort = await freePort();
  const pgPort = await freePort();
  const dataDir = `/var/tmp/sage-sync-faults-mongo-${mongoPort}`;
  const env = {
    SAGE_SYNC_DATA: dataDir,
    MONGO_PORT: String(mongoPort),
    PG_PORT: String(pgPort),
    FERRET_DEBUG_PORT: String(await freePort()),
    TEMPORAL_PORT: sharedTemporalPort(),
    MONGODB_URI: '',
  };
  // Only FerretDB: with the shared Temporal down, `up.sh` alone would start one on the shared port with this data
  // directory, which destroy() deletes under it (it then answered "unable to open database file" to everyone).
  return { ...infra(env, dataDir, ['mongo']), uri: `mongodb://127.0.0.1:${mongoPort}` };
}

function infra(env: Record<string, string>, dataDir: string, upArgs: string[] = []): SeparateInfra {
  return {
    env,
    dataDir,
    up: () => script('up.sh', env, upArgs),
    down: (what) => script('down.sh', env, [what]),
    async stopFerret() {
      const pidFile = path.join(dataDir, 'run', `mongo-${env.MONGO_PORT}.pid`);
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      // up.sh started it with setsid: its pid is its process group; this is the process we started, by its id.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        process.kill(pid, 'SIGKILL');
      }
      for (let i = 0; i < 50 && (await portOpen(Number(env.MONGO_PORT))); i++)
        await new Promise((r) => setTimeout(r, 100));
    },
    async destroy() {
      if (env.MONGO_PORT) await script('down.sh', env, ['mongo']).catch(() => {});
      if (env.TEMPORAL_UI_PORT) await script('down.sh', env, ['temporal']).catch(() => {});
      await rm(dataDir, { recursive: true, force: true }).catch(() => {});
      for (const name of ['MONGO_PORT', 'PG_PORT', 'FERRET_DEBUG_PORT', 'TEMPORAL_PORT', 'TEMPORAL_UI_PORT'] as const) {
        const port = Number(env[name]);
        if (port) releasePort(port);
      }
    },
  };
}
