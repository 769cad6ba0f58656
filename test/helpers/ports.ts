/**
 * Ports for servers a test (or the bench) starts itself: the one `freePort` of the suite (issue 16).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

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
 * A port for a server this process is about to start (or one with nothing listening): below the ephemeral range (see
 * above), not a shared server's, free right now, and locked machine-wide so a concurrent test elsewhere does not pick it
 * too. `releasePort` frees it; a lock left by a process that has exited is taken over.
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

/** Whether something accepts connections on 127.0.0.1:`port` (or `host`). */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}
