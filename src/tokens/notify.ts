/**
 * Signed webhook notifications (contract §5). The body is JSON with an `id`; headers carry the same event id and
 * `X-Sage-Sync-Signature: sha256=<hex HMAC-SHA256 of the raw body with NOTIFY_WEBHOOK_SECRET>`. Delivery is retried by
 * the activity retry policy for more than 24 hours; receivers deduplicate by event id (we also record deliveries by id in
 * the `notifications` collection and do not resend one already acknowledged).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import got, { HTTPError } from 'got';

export const SIGNATURE_HEADER = 'x-sage-sync-signature';
export const EVENT_ID_HEADER = 'x-sage-sync-event-id';
export const EVENT_TYPE_HEADER = 'x-sage-sync-event';

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** For receivers (and tests): constant-time check of the signature header against the raw body. */
export function verifySignature(secret: string, body: string, header: string | undefined): boolean {
  if (!header) return false;
  const want = Buffer.from(signBody(secret, body));
  const got = Buffer.from(header);
  return want.length === got.length && timingSafeEqual(want, got);
}

export class WebhookDeliveryError extends Error {
  override name = 'WebhookDeliveryError';
}

/** POSTs once; any non-2xx or network failure throws (the activity retry policy does the backoff). */
export async function postWebhook(url: string, secret: string | undefined, event: { id: string; type: string }): Promise<number> {
  const body = JSON.stringify(event);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'sage-tenant-sync',
    [EVENT_ID_HEADER]: event.id,
    [EVENT_TYPE_HEADER]: event.type,
  };
  if (secret) headers[SIGNATURE_HEADER] = signBody(secret, body);
  try {
    const res = await got.post(url, { body, headers, retry: { limit: 0 }, timeout: { request: 10_000 }, throwHttpErrors: true });
    return res.statusCode;
  } catch (err) {
    if (err instanceof HTTPError) throw new WebhookDeliveryError(`webhook answered HTTP ${err.response.statusCode}`);
    throw new WebhookDeliveryError(`webhook not reachable: ${(err as Error).message}`);
  }
}
