/**
 * Drives a tenant through consent without a browser, against the Sage simulator: start `tenantConnection`, read the
 * consent URL from `status`, "click" it at the simulator (which approves at once and redirects with a code), then hand
 * code and state to the workflow with the `completeAuthorization` update — what `/oauth/callback` does.
 * Shared by the fault suite and the bench; the steps (`followConsent`, `callbackArgs`, `waitForStatus`) are the one
 * consent walk-through of the suite, also used by the token harness (through the web routes) and the CLI test.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import got from 'got';
import {
  completeAuthorizationUpdate,
  connectionWorkflowId,
  statusQuery,
  type ConnectionStatus,
  type Provider,
  type TenantConnectionInput,
} from '../../src/messages.js';

export interface ConsentTarget {
  client: Client;
  taskQueue: string;
  /** Base URL of the simulator's admin API, e.g. http://127.0.0.1:4010/__admin */
  simAdminUrl: string;
}

/** Queries `status` until `pred` holds (a workflow not started yet is retried); at the deadline names the last status. */
export async function waitForStatus(
  client: Client,
  workflowId: string,
  pred: (s: ConnectionStatus) => boolean,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<ConnectionStatus> {
  const handle = client.workflow.getHandle(workflowId);
  const deadline = Date.now() + timeoutMs;
  let last: ConnectionStatus | undefined;
  for (;;) {
    try {
      last = await handle.query(statusQuery);
      if (pred(last)) return last;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `status of ${workflowId} did not reach the expected state: ${JSON.stringify(last)?.slice(0, 400)}`,
      );
    await sleep(intervalMs);
  }
}

/**
 * "Clicks" a Sage consent URL at the simulator, which approves at once and redirects back: returns where it redirected
 * (our callback URL, carrying code and state). Anything but a redirect is an error naming the answer.
 */
export async function followConsent(authorizationUrl: string): Promise<URL> {
  const res = await got(authorizationUrl, { followRedirect: false, throwHttpErrors: false });
  const location = res.headers.location;
  if (res.statusCode !== 302 || !location)
    throw new Error(`consent at the simulator did not redirect (${res.statusCode}): ${String(res.body).slice(0, 300)}`);
  return new URL(location);
}

/** The `completeAuthorization` arguments a consent redirect carries (what `/oauth/callback` hands the workflow). */
export function callbackArgs(back: URL): { code: string; state: string; country?: string } {
  const code = back.searchParams.get('code');
  const state = back.searchParams.get('state');
  if (!code || !state) throw new Error(`consent redirect without code/state: ${back.search}`);
  const country = back.searchParams.get('country');
  return { code, state, ...(country ? { country } : {}) };
}

/**
 * Connects `tenantId` to simulator user `userId` (created by the caller through the admin API) and returns the
 * connected status. `input` adds fields of the workflow input (sync interval, businessIds, …).
 */
export async function connectTenant(
  t: ConsentTarget,
  conn: { tenantId: string; provider: Provider; userId: string; input?: Partial<TenantConnectionInput> },
): Promise<ConnectionStatus> {
  const workflowId = connectionWorkflowId(conn.provider, conn.tenantId);
  await got.post(`${t.simAdminUrl}/next-consent`, { json: { provider: conn.provider, userId: conn.userId } });
  const handle = await t.client.workflow.start('tenantConnection', {
    taskQueue: t.taskQueue,
    workflowId,
    args: [{ tenantId: conn.tenantId, provider: conn.provider, ...conn.input }],
  });
  const awaiting = await waitForStatus(t.client, workflowId, (s) => s.authorizationUrl !== null);
  const back = await followConsent(awaiting.authorizationUrl!);
  const status = await handle.executeUpdate(completeAuthorizationUpdate, { args: [callbackArgs(back)] });
  if (status.state !== 'connected')
    throw new Error(
      `consent did not connect ${workflowId}: ${status.state} ${status.reason} ${status.lastError ?? ''}`,
    );
  return status;
}
