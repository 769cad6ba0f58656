/**
 * Activities behind `customers.changed` (contract §5): announce a finished run's change range, and find the
 * connection's own webhook URL. Delivery itself is the shared `deliverNotification` activity (src/activities/notify.ts).
 */
import { decodeFromPayloadsAtIndex, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { connectionsCollection } from '../lib/connection-doc.js';
import { connectionWorkflowId, type Provider } from '../messages.js';
import { announceRun, type Announcement, type PartitionChangeCounts } from '../sync/announce.js';
import { dataConverter } from '../temporal/data-converter.js';
import type { ActivityDeps } from './deps.js';
import { mappingFailures } from '../errors.js';

/** The fields of the connection workflow's input that carry its webhook (a continued run carries them in its state). */
interface ConnectionInputWebhook {
  notifyWebhookUrl?: string;
  __carried?: { settings?: { notifyWebhookUrl?: string } };
}

export function webhookUrlFromInput(input: unknown): string | undefined {
  const i = (input ?? {}) as ConnectionInputWebhook;
  return i.__carried?.settings?.notifyWebhookUrl ?? i.notifyWebhookUrl;
}

export function createChangeActivities(deps: ActivityDeps) {
  const { config, mongo, client } = deps;
  const converter = loadDataConverter(dataConverter(config));

  return mappingFailures({
    async announceCustomerChanges(p: {
      tenantId: string;
      provider: Provider;
      syncWorkflowId: string;
      partitions: Record<string, PartitionChangeCounts>;
    }): Promise<Announcement> {
      return announceRun(mongo.db, { tenantId: p.tenantId, provider: p.provider }, p.syncWorkflowId, p.partitions);
    },

    /**
     * The per-connection `notifyWebhookUrl` (contract §3 input), which overrides `NOTIFY_WEBHOOK_URL`. The connection
     * workflow keeps it in its input (encrypted in history), not in the `connections` mirror, so it is read from the
     * first event of the connection's current run; a mirror field, if one is added later, wins. `undefined` = global.
     */
    async connectionWebhookUrl(p: { tenantId: string; provider: Provider }): Promise<string | undefined> {
      const workflowId = connectionWorkflowId(p.provider, p.tenantId);
      const mirror = await connectionsCollection(mongo).findOne({ _id: workflowId });
      if (mirror?.notifyWebhookUrl) return mirror.notifyWebhookUrl;
      try {
        const res = await client.workflowService.getWorkflowExecutionHistory({
          namespace: config.TEMPORAL_NAMESPACE,
          execution: { workflowId },
          maximumPageSize: 1,
        });
        const payloads = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
        if (!payloads?.length) return undefined;
        return webhookUrlFromInput(await decodeFromPayloadsAtIndex(converter, 0, payloads));
      } catch (err) {
        // No connection workflow (a sync started by hand, or after disconnect): the global URL applies.
        if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
        throw err;
      }
    },
  });
}
