/**
 * Webhook delivery as an activity: the workflow's retry policy (scheduleToClose > 24 h, backoff up to 30 min) does the
 * retrying. Idempotent by event id: a delivery already acknowledged (recorded in `notifications`) is not sent again.
 * A URL the webhook policy refuses (http in production, a non-public address: src/tokens/notify.ts) fails at once,
 * non-retryable (`WebhookRefused`): waiting 24 hours cannot make it allowed.
 */
import { COLLECTIONS } from '../lib/mongo.js';
import { postWebhook, webhookPolicy, WebhookRefusedError } from '../tokens/notify.js';
import type { CustomersChangedEvent } from '../sync/announce.js';
import type { NotificationEvent } from '../connection/machine.js';
import type { ActivityDeps } from './deps.js';
import { mappingFailures } from '../errors.js';

interface NotificationDoc {
  _id: string;
  type: string;
  workflowId: string;
  url: string;
  attempts: number;
  deliveredAt: Date | null;
  lastError: string | null;
  updatedAt: Date;
}

export function createNotifyActivities(deps: ActivityDeps) {
  const { config, mongo, log } = deps;
  const coll = () => mongo.collection<NotificationDoc>(COLLECTIONS.notifications);
  const policy = webhookPolicy(config);
  return mappingFailures({
    async deliverNotification(p: {
      event: NotificationEvent | CustomersChangedEvent;
      url?: string;
    }): Promise<'delivered' | 'already_delivered' | 'no_webhook'> {
      const url = p.url ?? config.NOTIFY_WEBHOOK_URL;
      if (!url) return 'no_webhook';
      const existing = await coll().findOne({ _id: p.event.id });
      if (existing?.deliveredAt) return 'already_delivered';
      await coll().updateOne(
        { _id: p.event.id },
        {
          $set: {
            type: p.event.type,
            workflowId: 'workflowId' in p.event ? p.event.workflowId : p.event.runId,
            url,
            updatedAt: new Date(),
          },
          $inc: { attempts: 1 },
          $setOnInsert: { deliveredAt: null, lastError: null },
        },
        { upsert: true },
      );
      try {
        await postWebhook(url, config.NOTIFY_WEBHOOK_SECRET, p.event, policy);
      } catch (err) {
        await coll()
          .updateOne({ _id: p.event.id }, { $set: { lastError: (err as Error).message, updatedAt: new Date() } })
          .catch(() => {});
        // Mapped at the activity boundary (`toActivityFailure`): a refused URL is not retried.
        if (err instanceof WebhookRefusedError)
          log.error({ eventId: p.event.id, err }, 'webhook URL refused; not retrying');
        else log.warn({ eventId: p.event.id, err }, 'webhook delivery failed; will retry');
        throw err;
      }
      await coll().updateOne(
        { _id: p.event.id },
        { $set: { deliveredAt: new Date(), lastError: null, updatedAt: new Date() } },
      );
      return 'delivered';
    },
  });
}
