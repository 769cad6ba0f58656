import { TypedSearchAttributes } from '@temporalio/common';
import { queryStatus } from '../../lib/connection-overview.js';
import {
  beginAuthorizationUpdate,
  connectionWorkflowId,
  describeZodError,
  SageProviderSearchAttribute,
  TenantConnectionInput,
  TenantIdSearchAttribute,
} from '../../messages.js';
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

/** `--site siteId:companyId` (either part may be empty) → the contract's `sage200.sites` entry. */
function parseSite(s: string): { siteId?: string; companyId?: string } {
  const [siteId, companyId] = s.split(':');
  return { ...(siteId ? { siteId } : {}), ...(companyId ? { companyId } : {}) };
}

/**
 * `connect <tenant> --provider p`: starts the `tenantConnection` workflow under its contract id unless it is already
 * running (an existing connection is reused, never restarted), waits for the consent URL and prints it.
 */
export async function connectCommand(
  ctx: CliContext,
  tenant: string,
  opts: ConnectOptions,
  out: NodeJS.WritableStream,
): Promise<number> {
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
      ? {
          sage200: {
            ...(opts.edition ? { edition: opts.edition } : {}),
            ...(opts.site?.length ? { sites: opts.site.map(parseSite) } : {}),
          },
        }
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
      { key: TenantIdSearchAttribute, value: tenantId },
      { key: SageProviderSearchAttribute, value: provider },
    ]),
  });
  const timeoutMs = Number(opts.timeout ?? 20) * 1000;
  const status = await queryStatus(client, workflowId, timeoutMs);
  if (!status) {
    throw new CliExit(
      EXIT.failure,
      `started ${workflowId} (run ${handle.firstExecutionRunId}) but it did not answer the status query; is a worker polling task queue ${ctx.config.TEMPORAL_TASK_QUEUE}?`,
    );
  }
  if (status.state === 'connected') {
    if (opts.json) out.write(`${JSON.stringify({ workflowId, ...status }, null, 2)}\n`);
    else out.write(`${tenantId} (${provider}) is already connected (workflow ${workflowId}).\n`);
    return EXIT.ok;
  }
  // Each consent link carries its own single-use, short-lived state: ask the workflow to mint one for this request.
  let consent: { authorizationUrl: string; expiresAt: string };
  try {
    consent = await client.withDeadline(Date.now() + timeoutMs, () =>
      handle.executeUpdate(beginAuthorizationUpdate, { args: [{}] }),
    );
  } catch (err) {
    throw new CliExit(
      EXIT.failure,
      `${workflowId} is ${status.state} but could not mint a consent URL: ${(err as Error).message}`,
    );
  }
  if (opts.json)
    out.write(
      `${JSON.stringify({ workflowId, ...status, authorizationUrl: consent.authorizationUrl, authorizationUrlExpiresAt: consent.expiresAt }, null, 2)}\n`,
    );
  else {
    out.write(
      `Workflow ${workflowId} is waiting for consent${status.reason ? ` (${status.reason})` : ''}. Open this URL, or hand it to the customer`,
    );
    out.write(` (valid until ${consent.expiresAt}):\n${consent.authorizationUrl}\n`);
  }
  return EXIT.ok;
}
