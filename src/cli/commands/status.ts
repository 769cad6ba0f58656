import { listConnections } from '../../lib/connection-overview.js';
import { resolveConnection } from '../connection-ref.js';
import type { CliContext } from '../context.js';
import { CliExit, EXIT } from '../exit-codes.js';
import { connectionDetails, connectionsTable } from '../format.js';

export interface StatusOptions {
  provider?: string;
  json?: boolean;
}

/**
 * `status <tenant>`: one connection in detail; exit 4 when it needs the customer's consent (awaiting or reauthorization),
 * so monitoring scripts can alert on the exit code alone. `status` without a tenant is `list`.
 */
export async function statusCommand(
  ctx: CliContext,
  tenant: string | undefined,
  opts: StatusOptions,
  out: NodeJS.WritableStream,
): Promise<number> {
  if (!tenant) {
    const list = await listConnections(await ctx.deps(), { countCustomers: true });
    out.write(`${opts.json ? JSON.stringify({ connections: list }, null, 2) : connectionsTable(list)}\n`);
    return EXIT.ok;
  }
  const c = await resolveConnection(ctx, tenant, opts.provider);
  out.write(`${opts.json ? JSON.stringify(c, null, 2) : connectionDetails(c)}\n`);
  if (c.state === 'reauthorization_required' || c.state === 'awaiting_authorization') {
    throw new CliExit(
      EXIT.reauthorizationRequired,
      `${c.tenantId} (${c.provider}) needs the customer's consent${c.reason ? ` (${c.reason})` : ''}: ${c.authorizationUrl ?? `run \`sage-sync connect ${c.tenantId} --provider ${c.provider}\``}`,
    );
  }
  return EXIT.ok;
}
