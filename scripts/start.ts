/**
 * `npm start`: the whole service on one machine. Generates a dev TOKEN_ENCRYPTION_KEY when none is configured (and, in
 * demo mode, the operator credential OPERATOR_TOKEN, both into git-ignored files under .local/), starts
 * (or reuses) the local Temporal dev server and MongoDB-wire server, the Sage simulator when no real Sage credentials are
 * configured (demo mode), then the worker and the web server as child processes. Prints where to go, and on Ctrl-C
 * (SIGINT/SIGTERM) stops exactly what it started: the children first, then only the infra servers it brought up.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConfigError,
  DEV_KEY_FILE,
  DEV_OPERATOR_TOKEN_FILE,
  parseConfig,
  requireOperatorToken,
} from '../src/config.js';
import { DEMO_APPS } from '../src/simulator/apps.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const say = (msg: string) => process.stdout.write(`[start] ${msg}\n`);
const warn = (msg: string) => process.stderr.write(`[start] ${msg}\n`);

function portOpen(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** The env for every child: the operator's environment plus what `npm start` decides (key file, demo Sage URLs, ports). */
const env: NodeJS.ProcessEnv = { ...process.env };
const set = (k: string, v: string) => {
  if (!env[k]) env[k] = v;
};

// ---- 1. encryption key ----
if (!env.TOKEN_ENCRYPTION_KEY) {
  if (env.NODE_ENV === 'production') {
    warn('TOKEN_ENCRYPTION_KEY is required in production (32 bytes, base64: `openssl rand -base64 32`).');
    process.exit(78);
  }
  if (existsSync(DEV_KEY_FILE))
    say(`using the dev TOKEN_ENCRYPTION_KEY in ${path.relative(ROOT, DEV_KEY_FILE)} (git-ignored)`);
  else {
    mkdirSync(path.dirname(DEV_KEY_FILE), { recursive: true });
    writeFileSync(DEV_KEY_FILE, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    say(
      `generated a dev TOKEN_ENCRYPTION_KEY into ${path.relative(ROOT, DEV_KEY_FILE)} (git-ignored). Keep it: tokens stored with it`,
    );
    say('cannot be read without it. In production set TOKEN_ENCRYPTION_KEY instead.');
  }
}

// ---- 2. demo mode: no real Sage credentials → the simulator stands in for Sage ----
const demo = !env.SAGE_ACCOUNTING_CLIENT_ID && !env.SAGE200_CLIENT_ID;
set('WORKER_METRICS_PORT', '9464');

// ---- 2b. the operator credential (contract §5): generated in demo mode, required otherwise ----
let operatorTokenFile: string | null = null;
if (!env.OPERATOR_TOKEN && demo) {
  operatorTokenFile = path.relative(ROOT, DEV_OPERATOR_TOKEN_FILE);
  if (existsSync(DEV_OPERATOR_TOKEN_FILE)) env.OPERATOR_TOKEN = readFileSync(DEV_OPERATOR_TOKEN_FILE, 'utf8').trim();
  else {
    mkdirSync(path.dirname(DEV_OPERATOR_TOKEN_FILE), { recursive: true });
    env.OPERATOR_TOKEN = randomBytes(24).toString('base64url');
    writeFileSync(DEV_OPERATOR_TOKEN_FILE, `${env.OPERATOR_TOKEN}\n`, { mode: 0o600 });
    say(`generated the operator credential OPERATOR_TOKEN into ${operatorTokenFile} (git-ignored)`);
  }
}
let config;
try {
  config = parseConfig(env);
  requireOperatorToken(config); // outside demo mode the operator sets it; the web server would refuse to start anyway
} catch (err) {
  if (err instanceof ConfigError) {
    for (const i of err.issues) warn(`config error: ${i.variable}: ${i.message}`);
    process.exit(78);
  }
  throw err;
}
if (demo) {
  const sim = `http://127.0.0.1:${config.SIM_PORT}`;
  // Contract §6: the simulator mirrors the real URLs under path prefixes; these are the only changes.
  Object.assign(env, {
    SAGE_ACCOUNTING_CLIENT_ID: DEMO_APPS.sageAccounting.clientId,
    SAGE_ACCOUNTING_CLIENT_SECRET: DEMO_APPS.sageAccounting.clientSecret,
    SAGE_ACCOUNTING_AUTH_URL: `${sim}/sage-accounting/oauth2/auth/central?filter=apiv3.1`,
    SAGE_ACCOUNTING_TOKEN_URL: `${sim}/sage-accounting/token`,
    SAGE_ACCOUNTING_REVOKE_URL: `${sim}/sage-accounting/revoke`,
    SAGE_ACCOUNTING_API_URL: `${sim}/sage-accounting/v3.1`,
    SAGE200_CLIENT_ID: DEMO_APPS.sage200.clientId,
    SAGE200_CLIENT_SECRET: DEMO_APPS.sage200.clientSecret,
    SAGE200_SUBSCRIPTION_KEY: DEMO_APPS.sage200.subscriptionKey,
    SAGE200_AUTH_URL: `${sim}/sage200/authorize`,
    SAGE200_TOKEN_URL: `${sim}/sage200/oauth/token`,
    SAGE200_REVOKE_URL: `${sim}/sage200/oauth/revoke`,
    SAGE200_API_URL: `${sim}/sage200/api/uk`,
  });
  parseConfig(env); // the demo settings must be valid too
}

// ---- 3. infra (reuse what runs; remember what we start) ----
const [temporalHost = '127.0.0.1', temporalPortText = '7233'] = config.TEMPORAL_ADDRESS.split(':');
const temporalPort = Number(temporalPortText);
const mongoExternal = Boolean(process.env.MONGODB_URI);
const temporalWasUp = await portOpen(temporalHost, temporalPort);
const mongoWasUp = mongoExternal || (await portOpen('127.0.0.1', Number(env.MONGO_PORT ?? 27017)));
const infraEnv = {
  ...env,
  TEMPORAL_HOST: temporalHost,
  TEMPORAL_PORT: String(temporalPort),
  TEMPORAL_UI_PORT: new URL(config.TEMPORAL_UI_URL).port || '8233',
};
if (!temporalWasUp || !mongoWasUp) {
  say('starting local infra (scripts/infra/up.sh; first run downloads pinned binaries into ~/.cache/sage-sync)...');
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/infra/up.sh')], {
    cwd: ROOT,
    env: infraEnv,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) {
    warn('infra did not start; see the messages above');
    stopInfra();
    process.exit(1);
  }
} else say(`reusing the running Temporal (${config.TEMPORAL_ADDRESS}) and MongoDB (${config.MONGODB_URI})`);

function stopInfra(): void {
  if (!temporalWasUp)
    spawnSync('bash', [path.join(ROOT, 'scripts/infra/down.sh'), 'temporal'], {
      cwd: ROOT,
      env: infraEnv,
      stdio: 'inherit',
    });
  if (!mongoWasUp)
    spawnSync('bash', [path.join(ROOT, 'scripts/infra/down.sh'), 'mongo'], {
      cwd: ROOT,
      env: infraEnv,
      stdio: 'inherit',
    });
}

// ---- 4. children ----
interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
}
const children: Child[] = [];
let stopping = false;
let workerReady = false;

function startChild(name: string, entry: string): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = (stream: NodeJS.ReadableStream, out: NodeJS.WritableStream) => {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (name === 'worker' && line.includes('"worker started"')) workerReady = true;
        out.write(`[${name}] ${line}\n`);
      }
    });
  };
  prefix(proc.stdout!, process.stdout);
  prefix(proc.stderr!, process.stderr);
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))),
  );
  const child = { name, proc, exited };
  void exited.then((code) => {
    if (!stopping) {
      warn(`${name} exited unexpectedly (code ${code}); stopping everything`);
      void shutdown(1);
    }
  });
  children.push(child);
  return child;
}

async function shutdown(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => {});
  stopping = true;
  say('stopping...');
  // Web first (no new requests), then the worker (drains in-flight tasks), then the simulator.
  for (const name of ['web', 'worker', 'sim']) {
    const c = children.find((x) => x.name === name);
    if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) continue;
    c.proc.kill('SIGTERM');
    const killed = await Promise.race([c.exited.then(() => true), sleep(20_000).then(() => false)]);
    if (!killed) {
      warn(`${name} did not stop within 20 s; killing it`);
      c.proc.kill('SIGKILL');
      await c.exited;
    }
  }
  stopInfra();
  say('stopped');
  process.exit(code);
}
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

if (demo) {
  if (await portOpen('127.0.0.1', config.SIM_PORT)) {
    warn(`port ${config.SIM_PORT} is taken; set SIM_PORT to a free port for the Sage simulator`);
    await shutdown(1);
  }
  say(`demo mode (no Sage credentials configured): starting the Sage simulator on port ${config.SIM_PORT}`);
  startChild('sim', 'src/simulator/main.ts');
  for (let i = 0; i < 120 && !(await portOpen('127.0.0.1', config.SIM_PORT)); i++) await sleep(250);
} else say('Sage credentials found: talking to the real Sage APIs');
startChild('worker', 'src/worker.ts');
startChild('web', 'src/web/main.ts');

// ---- 5. wait until the web server is healthy (and the worker polls), then say where to go ----
const local = `http://127.0.0.1:${config.PORT}`;
const deadline = Date.now() + 120_000;
let healthy = false;
while (!stopping && Date.now() < deadline) {
  try {
    const r = await fetch(`${local}/healthz`, { signal: AbortSignal.timeout(4_000) });
    if (r.status === 200) healthy = true;
  } catch {
    /* not listening yet */
  }
  if (healthy && workerReady) break;
  await sleep(500);
}
if (!healthy) {
  warn(`the web server did not report healthy at ${local}/healthz within 120 s`);
  await shutdown(1);
}
if (!workerReady) warn('the worker has not reported "worker started" yet; workflows will wait for it');

const page = `${config.PUBLIC_BASE_URL}/connections`;
const ui = config.TEMPORAL_UI_URL;
const login = operatorTokenFile
  ? `any user name, password = the contents of ${operatorTokenFile} (\`cat ${operatorTokenFile}\`)`
  : 'any user name, password = your OPERATOR_TOKEN';
process.stdout.write(`
  Sage tenant sync is running${demo ? ' in demo mode (Sage simulated on port ' + config.SIM_PORT + ')' : ''}.
    Connections page   ${page}
    Log in             ${login}
                       scripts: Authorization: Bearer <OPERATOR_TOKEN>
    Temporal UI        ${ui}   (task queue ${config.TEMPORAL_TASK_QUEUE}, codec ${config.PUBLIC_BASE_URL}/codec: log in to the connections page
                       first, then in the UI's codec settings turn on "Include cross-origin credentials")
    Metrics            ${config.PUBLIC_BASE_URL}/metrics (operator)  and worker http://127.0.0.1:${env.WORKER_METRICS_PORT}/metrics

  1. Open ${page}, log in as above, enter a tenant id (e.g. acme), choose a provider and press Connect (${demo ? 'the simulated Sage approves at once' : 'sign in at Sage and approve'}), then press Sync now.
  2. Watch the counts there, in the Temporal UI (workflow sage-connection:sage-accounting:acme) or with \`npx sage-sync status acme\`; customers land in MongoDB ${config.MONGODB_DB}.customers.
  Press Ctrl-C to stop everything npm start started.
`);
await new Promise<never>(() => {}); // run until a signal
