/**
 * Delivers one `customers.changed` event (contract §5) in its own workflow, started by `syncCustomers` and abandoned
 * by it: delivery is retried for more than 24 hours, exactly like the reauthorization notifications, without keeping
 * the sync run open (the schedule's overlap policy Skip would otherwise skip every sync until the webhook answers).
 * The workflow id is the event id, so an event is started once; `deliverNotification` also skips a delivered id.
 */
import { log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { CustomersChangedEvent } from '../sync/announce.js';

// The same policy as the connection workflow's notifications (src/workflows/tenant-connection/workflow.ts `notifyActs`).
const { deliverNotification } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '25h',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '30m' },
});

export async function deliverCustomersChanged(p: { event: CustomersChangedEvent; url?: string }): Promise<string> {
  const outcome = await deliverNotification(p);
  log.info('customers.changed delivery', { eventId: p.event.id, outcome });
  return outcome;
}
