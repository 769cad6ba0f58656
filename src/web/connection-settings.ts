/**
 * The settings a connection was started with (sync interval, business ids, Sage 200 edition and sites, webhook URL), so
 * that `/connect` for a closed (disconnected) connection starts the new run with them instead of the defaults.
 *
 * The source of truth is the input of the connection's latest run (continue-as-new carries the original input along),
 * read from the first event of its history and decoded with the client's (encrypting) data converter. When that
 * history is gone (namespace retention), the `connections` document still remembers the Sage 200 edition.
 */
import type { Client } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';
import type { z } from 'zod';
import { connectionsCollection } from '../lib/connection-doc.js';
import type { Mongo } from '../lib/mongo.js';
import { TenantConnectionInput } from '../messages.js';

import { SAGE200_EDITIONS, type Sage200Edition } from '../providers/sage200/editions.js';

export { SAGE200_EDITIONS, type Sage200Edition };

/** The user-facing settings of a start input, without tenant/provider and without internal fields (`__carried`, …). */
const Settings = TenantConnectionInput.pick({
  sync: true,
  businessIds: true,
  sage200: true,
  notifyWebhookUrl: true,
}).partial();
export type ConnectionSettings = z.input<typeof Settings>;

export async function lastRunSettings(client: Client, workflowId: string): Promise<ConnectionSettings | null> {
  try {
    const res = await client.withDeadline(Date.now() + 5_000, () =>
      client.workflowService.getWorkflowExecutionHistory({
        namespace: client.options.namespace,
        execution: { workflowId },
        maximumPageSize: 1,
      }),
    );
    const payloads = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
    if (!payloads?.length) return null;
    const input = await decodeFromPayloadsAtIndex<Record<string, unknown>>(
      client.workflow.options.loadedDataConverter,
      0,
      payloads,
    );
    const { sync, businessIds, sage200, notifyWebhookUrl } = input ?? {};
    const parsed = Settings.safeParse(
      Object.fromEntries(
        Object.entries({ sync, businessIds, sage200, notifyWebhookUrl }).filter(([, v]) => v !== undefined),
      ),
    );
    return parsed.success ? (parsed.data as ConnectionSettings) : null;
  } catch {
    return null; // no such workflow, history gone, undecodable: the caller falls back to the connections document
  }
}

/** The Sage 200 edition the `connections` document records for this connection, if any. */
export async function recordedEdition(mongo: Mongo, workflowId: string): Promise<Sage200Edition | null> {
  try {
    const doc = await connectionsCollection(mongo).findOne({ _id: workflowId }, { projection: { sage200: 1 } });
    const edition = doc?.sage200?.edition;
    return (SAGE200_EDITIONS as readonly string[]).includes(edition ?? '') ? (edition as Sage200Edition) : null;
  } catch {
    return null;
  }
}

/** Settings for a new run: the last run's (or the recorded edition), with an explicitly chosen edition on top. */
export async function settingsForRestart(
  deps: { client: Client; mongo: Mongo },
  workflowId: string,
  edition: Sage200Edition | undefined,
): Promise<ConnectionSettings> {
  const previous = (await lastRunSettings(deps.client, workflowId)) ?? {};
  const keptEdition =
    edition ?? previous.sage200?.edition ?? (await recordedEdition(deps.mongo, workflowId)) ?? undefined;
  return { ...previous, ...(keptEdition ? { sage200: { ...previous.sage200, edition: keptEdition } } : {}) };
}
