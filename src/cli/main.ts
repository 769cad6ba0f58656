/**
 * `sage-sync`: the operator CLI (package `bin`, `npx sage-sync <command>`). Reads the same environment as the services
 * (contract §2) and talks to the same Temporal namespace and MongoDB database. Exit codes: see ./exit-codes.ts.
 */
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { PROVIDERS } from '../messages.js';
import { changesCommand } from './commands/changes.js';
import { connectCommand } from './commands/connect.js';
import { disconnectCommand } from './commands/disconnect.js';
import { listCommand } from './commands/list.js';
import { statusCommand } from './commands/status.js';
import { syncNowCommand } from './commands/sync-now.js';
import { createContext, type CliContext } from './context.js';
import { CliExit, EXIT } from './exit-codes.js';

const EXIT_HELP = `
Exit codes:
  0  ok
  1  failure (Temporal or MongoDB unreachable, a sync run failed, a timeout)
  2  usage (bad arguments; tenant with several providers and no --provider)
  3  not found (no such connection, or its workflow is not running)
  4  reauthorization required (the connection waits for the customer's consent)
  78 configuration error (a bad environment variable, named in the message)

Environment: the service's variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, MONGODB_URI, MONGODB_DB,
TOKEN_ENCRYPTION_KEY — outside production the dev key written by \`npm start\` is used when it is unset).`;

const providerOption = () =>
  new Option('-p, --provider <provider>', 'sage-accounting or sage-200 (needed when the tenant has both)').choices(
    PROVIDERS,
  );
const collect = (v: string, prev: string[] = []) => [...prev, v];

export function buildProgram(
  run: (fn: (ctx: CliContext) => Promise<number>) => Promise<void>,
  io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream & { isTTY?: boolean } },
): Command {
  const program = new Command('sage-sync')
    .description('Operate Sage tenant connections: connect, inspect, sync and disconnect.')
    .addHelpText('after', EXIT_HELP)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out.write(s), writeErr: (s) => io.err.write(s) });

  program
    .command('connect')
    .description('start the connection workflow (unless it is running) and print the consent URL')
    .argument('<tenant>', 'tenant id (^[A-Za-z0-9_.-]{1,64}$)')
    .addOption(providerOption().makeOptionMandatory())
    .option('-i, --interval <minutes>', 'sync interval in minutes (default 60)')
    .option('-b, --business <id>', 'Sage Accounting business id to sync (repeatable; default all)', collect)
    .option('--edition <edition>', 'Sage 200 edition: sage200 or sage200extra')
    .option('--site <siteId:companyId>', 'Sage 200 site/company to sync (repeatable; default all)', collect)
    .option('--timeout <seconds>', 'how long to wait for the consent URL', '20')
    .option('--json', 'print the status as JSON')
    .action((tenant: string, opts) => run((ctx) => connectCommand(ctx, tenant, opts, io.out)));

  program
    .command('status')
    .description('show one connection in detail (exit 4 if it needs consent), or all connections')
    .argument('[tenant]', 'tenant id')
    .addOption(providerOption())
    .option('--json', 'print JSON')
    .action((tenant: string | undefined, opts) => run((ctx) => statusCommand(ctx, tenant, opts, io.out)));

  program
    .command('list')
    .description('list all connections')
    .option('--state <state>', 'only connections in this state')
    .addOption(providerOption())
    .option('--json', 'print JSON')
    .action((opts) => run((ctx) => listCommand(ctx, opts, io.out)));

  program
    .command('sync-now')
    .description("trigger the connection's sync now; --wait follows it with a progress bar")
    .argument('<tenant>', 'tenant id')
    .addOption(providerOption())
    .option('--full', 'full reconciliation (flags customers deleted at Sage) instead of incremental')
    .option('-w, --wait', 'wait until every partition has finished; exit 1 if one failed')
    .option('--timeout <seconds>', 'with --wait, give up after this long', '600')
    .option('--json', 'print JSON')
    .action((tenant: string, opts) => run((ctx) => syncNowCommand(ctx, tenant, opts, io.out, io.err)));

  program
    .command('disconnect')
    .description('end the connection (revoking the grant at Sage unless --no-revoke); synced customers stay')
    .argument('<tenant>', 'tenant id')
    .addOption(providerOption())
    .option('--no-revoke', 'do not revoke the grant at Sage')
    .option('--timeout <seconds>', 'how long to wait for the workflow to finish', '60')
    .option('--json', 'print the final status as JSON')
    .action((tenant: string, opts) => run((ctx) => disconnectCommand(ctx, tenant, opts, io.out)));

  program
    .command('changes')
    .description(
      'customers changed after --since, in changeSeq order (one JSON line each), then {"horizon": N} for the next --since',
    )
    .argument('<tenant>', 'tenant id')
    .addOption(providerOption())
    .option('--since <seq>', 'the horizon printed by the previous call (default 0: everything)')
    .option('--json', 'one JSON document instead of JSON lines')
    .action((tenant: string, opts) => run((ctx) => changesCommand(ctx, tenant, opts, io.out)));

  return program;
}

/** Runs the CLI and returns the exit code (tests call this; the entry point exits with it). */
export async function runCli(
  argv: string[],
  io = { out: process.stdout, err: process.stderr },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let code: number = EXIT.ok;
  let ctx: CliContext | undefined;
  const run = async (fn: (c: CliContext) => Promise<number>): Promise<void> => {
    ctx = createContext(env);
    code = await fn(ctx);
  };
  try {
    await buildProgram(run, io).parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help / --version end with code 0; every parse error is a usage error.
      code = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else if (err instanceof CliExit) {
      io.err.write(`${err.message}\n`);
      code = err.code;
    } else {
      io.err.write(`error: ${(err as Error).message ?? String(err)}\n`);
      code = EXIT.failure;
    }
  } finally {
    await ctx?.close();
  }
  return code;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
