/**
 * A SEPARATE Temporal dev server or FerretDB for the fault tests that restart or cut them, started by the project's own
 * infra scripts on free ports with their own data directory. The shared servers (7233, 27017) are never touched:
 * `down.sh` stops only pids recorded under this data directory.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPTS = path.resolve(import.meta.dirname, '..', '..', 'scripts', 'infra');

/**
 * The kernel's ephemeral range: every outgoing connection (ours, other engineers', the Mongo driver reconnecting to a
 * server we just stopped) takes its local port from it. A port picked there and bound a few seconds later can be taken
 * meanwhile, and a client that keeps dialling 127.0.0.1:P while nothing listens on P can even connect to itself (TCP
 * self-connect) and hold P. Either way the server we start cannot bind, which is how the separate FerretDB "did not
 * come up within 60 s". So our ports come from below that range.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 1024 ? low : 32768;
  } catch {
    return 32768;
  }
}

/** Ports of the shared servers (scripts/infra/common.sh defaults), never handed out. */
const SHARED_PORTS = new Set([7233, 8233, 27017, 28017, 54329, 3000, 4010]);
const PORT_LOCKS = '/var/tmp/sage-sync-port-locks';
const reserved = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Takes the machine-wide lock of `port` (a directory holding our pid); a lock whose process is gone is taken over. */
function lockPort(port: number): boolean {
  const dir = path.join(PORT_LOCKS, String(port));
  mkdirSync(PORT_LOCKS, { recursive: true });
  try {
    mkdirSync(dir);
  } catch {
    let owner = 0;
    try {
      owner = Number(readFileSync(path.join(dir, 'pid'), 'utf8'));
    } catch {
      return false; // being created right now
    }
    try {
      process.kill(owner, 0);
      return false; // its owner is alive
    } catch {
      rmSync(dir, { recursive: true, force: true });
      return lockPort(port);
    }
  }
  writeFileSync(path.join(dir, 'pid'), String(process.pid));
  return true;
}

export function releasePort(port: number): void {
  if (!reserved.delete(port)) return;
  rmSync(path.join(PORT_LOCKS, String(port)), { recursive: true, force: true });
}

/**
 * A port for a server this process is about to start: below the ephemeral range (see above), not a shared server's,
 * free right now, and locked machine-wide so a concurrent test elsewhere does not pick it too. `releasePort` frees it.
 */
export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  const low = Math.min(20_000, high - 2_000);
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (SHARED_PORTS.has(port) || reserved.has(port)) continue;
    if (!lockPort(port)) continue;
    if (await bindable(port)) {
      reserved.add(port);
      return port;
    }
    rmSync(path.join(PORT_LOCKS, String(port)), { recursive: true, force: true });
  }
  throw new Error(`no free port found in ${low}-${high - 1}`);
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

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
  await run('bash', [path.join(SCRIPTS, name), ...args], { env: { ...process.env, ...env }, timeout: 180_000, maxBuffer: 10 * 1024 * 1024 });
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
    // up.sh also brings up Temporal; pointing it at the shared port makes it reuse that one.
    TEMPORAL_PORT: sharedTemporalPort(),
    MONGODB_URI: '',
  };
  return { ...infra(env, dataDir), uri: `mongodb://127.0.0.1:${mongoPort}` };
}

function infra(env: Record<string, string>, dataDir: string): SeparateInfra {
  return {
    env,
    dataDir,
    up: () => script('up.sh', env),
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
      for (let i = 0; i < 50 && (await portOpen(Number(env.MONGO_PORT))); i++) await new Promise((r) => setTimeout(r, 100));
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
