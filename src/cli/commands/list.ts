import { listConnections } from '../../lib/connection-overview.js';
import { CONNECTION_STATES } from '../../messages.js';
import type { CliContext } from '../context.js';
import { CliExit, EXIT } from '../exit-codes.js';
import { connectionsTable } from '../format.js';

export interface ListOptions {
  json?: boolean;
  state?: string;
  provider?: string;
}

/** `list`: every connection (from the connections collection, overlaid with live status). */
export async function listCommand(ctx: CliContext, opts: ListOptions, out: NodeJS.WritableStream): Promise<number> {
  if (opts.state && !(CONNECTION_STATES as readonly string[]).includes(opts.state)) {
    throw new CliExit(EXIT.usage, `invalid --state "${opts.state}": use one of ${CONNECTION_STATES.join(', ')}`);
  }
  let list = await listConnections(await ctx.deps(), { countCustomers: true });
  if (opts.state) list = list.filter((c) => c.state === opts.state);
  if (opts.provider) list = list.filter((c) => c.provider === opts.provider);
  out.write(`${opts.json ? JSON.stringify({ connections: list }, null, 2) : connectionsTable(list)}\n`);
  return EXIT.ok;
}
