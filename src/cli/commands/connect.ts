import { TypedSearchAttributes, defineSearchAttributeKey } from '@temporalio/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryStatus } from '../../lib/connection-overview.js';
import { connectionWorkflowId, describeZodError, TenantConnectionInput, type ConnectionStatus } from '../../messages.js';
import { parseProvider, parseTenant } from '../connection-ref.js';
import type { CliContext } from '../context.js';
import { CliExit, EXIT } from '../exit-codes.js';

export interface ConnectOptions {
  provider: string;
  interval?: string;
  business?: string[];
  edition?: string;
  site?: string[];
  json?: boolean;
  timeout?: string;
}

const TenantIdKey = defineSearchAttributeKey('TenantId', 'KEYWORD');
const SageProviderKey = defineSearchAttributeKey('SageProvider', 'KEYWORD');

/** `--site siteId:companyId` (either part may be empty) → the contract's `sage200.sites` entry. */
function parseSite(s: string): { siteId?: string; companyId?: string } {
  const [siteId, companyId] = s.split(':');
  return { ...(siteId ? { siteId } : {}), ...(companyId ? { companyId } : {}) };
}

/**
 * `connect <tenant> --provider p`: starts the `tenantConnection` workflow under its contract id unless it is already
 * running (an existing connection is reused, never restarted), waits for the consent URL and prints it.
 */
export async function connectCommand(ctx: CliContext, tenant: string, opts: ConnectOptions, out: NodeJS.WritableStream): Promise<number> {
  const tenantId = parseTenant(tenant);
  const provider = parseProvider(opts.provider);
  if (!provider) throw new CliExit(EXIT.usage, '--provider is required');
  const intervalMinutes = opts.interval !== undefined ? Number(opts.interval) : undefined;
  const candidate = {
    tenantId,
    provider,
    ...(intervalMinutes !== undefined ? { sync: { intervalMinutes } } : {}),
    ...(opts.business?.length ? { businessIds: opts.business } : {}),
    ...(opts.edition || opts.site?.length
      ? { sage200: { ...(opts.edition ? { edition: opts.edition } : {}), ...(opts.site?.length ? { sites: opts.site.map(parseSite) } : {}) } }
      : {}),
  };
  const parsed = TenantConnectionInput.safeParse(candidate);
  if (!parsed.success) throw new CliExit(EXIT.usage, `invalid connection input: ${describeZodError(parsed.error)}`);
  const client = await ctx.client();
  const workflowId = connectionWorkflowId(provider, tenantId);
  const handle = await client.workflow.start('tenantConnection', {
    workflowId,
    taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
    args: [candidate],
    // An existing running connection is reused as is: connecting twice must never reset its tokens.
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: new TypedSearchAttributes([
      { key: TenantIdKey, value: tenantId },
      { key: SageProviderKey, value: provider },
    ]),
  });
  const deadline = Date.now() + Number(opts.timeout ?? 20) * 1000;
  let status: ConnectionStatus | null = null;
  while (Date.now() < deadline) {
    status = await queryStatus(client, workflowId, Math.max(500, deadline - Date.now()));
    if (status && (status.authorizationUrl || status.state === 'connected' || status.state === 'disconnected')) break;
    await sleep(250);
  }
  if (!status) {
    throw new CliExit(EXIT.failure, `started ${workflowId} (run ${handle.firstExecutionRunId}) but it did not answer the status query; is a worker polling task queue ${ctx.config.TEMPORAL_TASK_QUEUE}?`);
  }
  if (opts.json) out.write(`${JSON.stringify({ workflowId, ...status }, null, 2)}\n`);
  else if (status.state === 'connected') out.write(`${tenantId} (${provider}) is already connected (workflow ${workflowId}).\n`);
  else if (status.authorizationUrl) {
    out.write(`Workflow ${workflowId} is waiting for consent. Open this URL (or hand it to the customer):\n${status.authorizationUrl}\n`);
  } else out.write(`Workflow ${workflowId} is ${status.state}${status.reason ? ` (${status.reason})` : ''}.\n`);
  if (!status.authorizationUrl && status.state !== 'connected') {
    throw new CliExit(EXIT.failure, `no consent URL yet for ${workflowId} (state ${status.state}); try \`sage-sync status ${tenantId} --provider ${provider}\``);
  }
  return EXIT.ok;
}
