/** Resolves `<tenant> [--provider]` to one connection, the way every per-tenant command needs it. */
import { connectionsCollection } from '../lib/connection-doc.js';
import { getConnection, type ConnectionOverview } from '../lib/connection-overview.js';
import { PROVIDERS, Provider, TenantId } from '../messages.js';
import type { CliContext } from './context.js';
import { CliExit, EXIT } from './exit-codes.js';

export function parseTenant(tenant: string): string {
  const r = TenantId.safeParse(tenant);
  if (!r.success)
    throw new CliExit(EXIT.usage, `invalid tenant "${tenant}": ${r.error.issues[0]?.message ?? 'bad value'}`);
  return r.data;
}

export function parseProvider(provider: string | undefined): Provider | undefined {
  if (provider === undefined) return undefined;
  const r = Provider.safeParse(provider);
  if (!r.success) throw new CliExit(EXIT.usage, `invalid --provider "${provider}": use one of ${PROVIDERS.join(', ')}`);
  return r.data;
}

/**
 * Finds the connection of `tenant` for `provider`; without `--provider`, the tenant's only connection. Exit 3 when there
 * is none, exit 2 when the tenant has several and `--provider` is needed to choose.
 */
export async function resolveConnection(
  ctx: CliContext,
  tenant: string,
  provider: string | undefined,
): Promise<ConnectionOverview> {
  const tenantId = parseTenant(tenant);
  const chosen = parseProvider(provider);
  const deps = await ctx.deps();
  let candidates: Provider[];
  if (chosen) candidates = [chosen];
  else {
    const docs = await connectionsCollection(deps.mongo)
      .find({ tenantId }, { projection: { provider: 1 } })
      .toArray();
    candidates = docs.length ? [...new Set(docs.map((d) => d.provider))] : [...PROVIDERS];
  }
  const found = (
    await Promise.all(candidates.map((p) => getConnection(deps, p, tenantId, { countCustomers: true })))
  ).filter((c): c is ConnectionOverview => c !== null);
  if (found.length === 0)
    throw new CliExit(
      EXIT.notFound,
      `no connection for tenant "${tenantId}"${chosen ? ` and provider ${chosen}` : ''}`,
    );
  if (found.length > 1) {
    throw new CliExit(
      EXIT.usage,
      `tenant "${tenantId}" has connections for ${found.map((c) => c.provider).join(' and ')}; choose one with --provider`,
    );
  }
  return found[0] as ConnectionOverview;
}
