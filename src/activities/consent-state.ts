/**
 * Which consent `state` a code came back with, for the code-exchange activity's PKCE verifier. The workflow hands the
 * activity only the code; the state is the input of the `completeAuthorization` update that runs the exchange, which is
 * in this run's history (an update is accepted, and its event written, in the same workflow task that schedules the
 * activity). Reading it here keeps the tenantConnection workflow and its activity inputs unchanged (replay-safe) and
 * stores nothing: the state is not a secret (it is in history already); the verifier derived from it never leaves the
 * activity.
 */
import type { Client } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { z } from 'zod';
import { completeAuthorizationUpdate } from '../messages.js';

const UpdateArg = z.object({ code: z.string(), state: z.string() }).loose();

/** The state of the newest `completeAuthorization` update of this run that carried `code`; null when there is none. */
export async function consentStateForCode(
  client: Client,
  execution: { workflowId: string; runId: string },
  code: string,
): Promise<string | null> {
  const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
  const events = history.events ?? [];
  for (let i = events.length - 1; i >= 0; i--) {
    const input = events[i]!.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input;
    if (input?.name !== completeAuthorizationUpdate.name) continue;
    const arg = UpdateArg.safeParse(
      await decodeFromPayloadsAtIndex(client.options.loadedDataConverter, 0, input.args?.payloads),
    );
    if (arg.success && arg.data.code === code) return arg.data.state;
  }
  return null;
}
