/**
 * `changes <tenant> [--provider p] [--since SEQ] [--json]`: the customers whose `changeSeq` is in (since, horizon], in
 * sequence order, one JSON line each, then a last line `{"horizon": N}` to pass as `--since` next time (contract §4).
 * The horizon is read BEFORE the customers (src/sync/change-seq.ts), so a change this run misses is above it and shows
 * up next time; nothing at or below it can still be committed. Needs MongoDB only.
 */
import { connectionsCollection } from '../../lib/connection-doc.js';
import { COLLECTIONS } from '../../lib/mongo.js';
import { PROVIDERS, type Provider } from '../../messages.js';
import { readHorizon } from '../../sync/change-seq.js';
import type { CustomerDoc } from '../../sync/documents.js';
import { parseProvider, parseTenant } from '../connection-ref.js';
import type { CliContext } from '../context.js';
import { CliExit, EXIT } from '../exit-codes.js';

export interface ChangesOptions {
  provider?: string;
  since?: string;
  json?: boolean;
}

export function parseSince(since: string | undefined): number {
  if (since === undefined) return 0;
  if (!/^\d{1,15}$/.test(since))
    throw new CliExit(EXIT.usage, `invalid --since "${since}": a non-negative integer (the horizon printed last time)`);
  return Number(since);
}

async function chooseProvider(ctx: CliContext, tenantId: string, provider: Provider | undefined): Promise<Provider> {
  if (provider) return provider;
  const mongo = await ctx.mongo();
  const docs = await connectionsCollection(mongo)
    .find({ tenantId }, { projection: { provider: 1 } })
    .toArray();
  const found = [...new Set(docs.map((d) => d.provider))].filter((p) => (PROVIDERS as readonly string[]).includes(p));
  if (found.length === 0) throw new CliExit(EXIT.notFound, `no connection for tenant "${tenantId}"`);
  if (found.length > 1)
    throw new CliExit(
      EXIT.usage,
      `tenant "${tenantId}" has connections for ${found.join(' and ')}; choose one with --provider`,
    );
  return found[0]!;
}

export async function changesCommand(
  ctx: CliContext,
  tenant: string,
  opts: ChangesOptions,
  out: NodeJS.WritableStream,
): Promise<number> {
  const tenantId = parseTenant(tenant);
  const since = parseSince(opts.since);
  const provider = await chooseProvider(ctx, tenantId, parseProvider(opts.provider));
  const mongo = await ctx.mongo();
  const horizon = await readHorizon(mongo.db, { tenantId, provider });
  const cursor = mongo
    .collection<CustomerDoc>(COLLECTIONS.customers)
    .find({ tenantId, provider, changeSeq: { $gt: since, $lte: horizon } }, { projection: { contentHash: 0 } })
    .sort({ changeSeq: 1 });
  const changes: unknown[] = [];
  for await (const doc of cursor) {
    if (opts.json) changes.push(doc);
    else out.write(`${JSON.stringify(doc)}\n`);
  }
  if (opts.json) out.write(`${JSON.stringify({ tenantId, provider, since, horizon, changes }, null, 2)}\n`);
  else out.write(`${JSON.stringify({ horizon })}\n`);
  return EXIT.ok;
}
