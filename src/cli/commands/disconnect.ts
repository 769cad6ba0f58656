import { WorkflowNotFoundError } from '@temporalio/common';
import { disconnectSignal, type ConnectionStatus } from '../../messages.js';
import { resolveConnection } from '../connection-ref.js';
import type { CliContext } from '../context.js';
import { CliExit, EXIT } from '../exit-codes.js';

export interface DisconnectOptions {
  provider?: string;
  revoke: boolean;
  json?: boolean;
  timeout?: string;
}

/**
 * `disconnect <tenant> [--no-revoke]`: signals `disconnect` and waits for the workflow to complete with its final status
 * (contract §7: it ends as completed, `state: disconnected`). Synced customers stay in MongoDB.
 */
export async function disconnectCommand(
  ctx: CliContext,
  tenant: string,
  opts: DisconnectOptions,
  out: NodeJS.WritableStream,
): Promise<number> {
  const c = await resolveConnection(ctx, tenant, opts.provider);
  if (c.state === 'disconnected')
    throw new CliExit(EXIT.notFound, `${c.tenantId} (${c.provider}) is already disconnected`);
  const client = await ctx.client();
  const handle = client.workflow.getHandle(c.workflowId);
  try {
    await handle.signal(disconnectSignal, { revoke: opts.revoke });
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new CliExit(EXIT.notFound, `workflow ${c.workflowId} is not running`);
    throw err;
  }
  let final: ConnectionStatus;
  try {
    final = (await client.withDeadline(Date.now() + Number(opts.timeout ?? 60) * 1000, () =>
      handle.result(),
    )) as ConnectionStatus;
  } catch (err) {
    throw new CliExit(
      EXIT.failure,
      `disconnect signalled, but ${c.workflowId} did not finish: ${(err as Error).message}`,
    );
  }
  if (opts.json)
    out.write(`${JSON.stringify({ workflowId: c.workflowId, revoked: opts.revoke, ...final }, null, 2)}\n`);
  else
    out.write(
      `${c.tenantId} (${c.provider}) is ${final?.state ?? 'disconnected'}${opts.revoke ? '; revocation at Sage was requested' : '; the grant was left in place (--no-revoke)'}.\n`,
    );
  return EXIT.ok;
}
