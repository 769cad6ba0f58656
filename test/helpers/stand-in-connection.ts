/**
 * A stand-in connection for sync tests and benchmarks that bring their own tokens: a sync plans from its connection
 * workflow (`syncPlan` query), never from the `connections` mirror, so a tenant synced without a real consent needs a
 * `tenantConnection` that answers. This starts the real workflow from a carried state that says connected with the
 * given partitions and holds no tokens (the caller's token source provides them). Nothing here is a test double of
 * the workflow: it is the same code a continued run starts from.
 */
import type { Client } from '@temporalio/client';
import { connectionWorkflowId, type Partition, type Provider, type TenantConnectionInput } from '../../src/messages.js';
import * as M from '../../src/connection/machine.js';

export async function startStandInConnection(
  client: Client,
  taskQueue: string,
  c: { tenantId: string; provider: Provider; partitions: Partition[]; edition?: string },
): Promise<string> {
  const workflowId = connectionWorkflowId(c.provider, c.tenantId);
  const input: TenantConnectionInput = {
    tenantId: c.tenantId,
    provider: c.provider,
    ...(c.edition ? { sage200: { edition: c.edition as 'sage200' | 'sage200extra' } } : {}),
  };
  const parsed = M.parseInput(input, workflowId, connectionWorkflowId);
  if (!parsed.ok) throw new Error(parsed.message);
  const carried: M.MachineState = {
    ...M.initialState(parsed.value, workflowId),
    state: 'connected',
    reason: null,
    partitions: c.partitions,
  };
  await client.workflow.start('tenantConnection', { workflowId, taskQueue, args: [{ ...input, __carried: carried }] });
  return workflowId;
}
