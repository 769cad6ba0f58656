/**
 * Signed webhook notifications (contract §5). The body is JSON with an `id`; headers carry the same event id and
 * `X-Sage-Sync-Signature: sha256=<hex HMAC-SHA256 of the raw body with NOTIFY_WEBHOOK_SECRET>`. Delivery is retried by
 * the activity retry policy for more than 24 hours; receivers deduplicate by event id (we also record deliveries by id in
 * the `notifications` collection and do not resend one already acknowledged).
 *
 * The body and the signature stay on the receiver's host: redirects are never followed (a 3xx is a failed delivery),
 * and outside development only `https:` URLs are used. Loopback, private, link-local and other non-public addresses
 * are refused unless NOTIFY_WEBHOOK_ALLOW_PRIVATE=true, checked on the literal host AND on every address the name
 * resolves to at connect time (the check sits in the socket's DNS lookup, so a name cannot resolve differently between
 * a check and the connection).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import dns, { type LookupAddress, type LookupOptions } from 'node:dns';
import net from 'node:net';
import got, { HTTPError } from 'got';
import { WebhookDeliveryError, WebhookRefusedError } from '../errors.js';

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

/** The webhook errors live with every other error type (`src/errors.ts`). */
export { WebhookDeliveryError, WebhookRefusedError };

export interface WebhookPolicy {
  /** `http:` URLs (development and tests only). */
  allowHttp: boolean;
  /** Loopback, private and link-local receivers (NOTIFY_WEBHOOK_ALLOW_PRIVATE). */
  allowPrivate: boolean;
}
export const STRICT_WEBHOOK_POLICY: WebhookPolicy = { allowHttp: false, allowPrivate: false };

export function webhookPolicy(config: { NODE_ENV: string; NOTIFY_WEBHOOK_ALLOW_PRIVATE: boolean }): WebhookPolicy {
  return { allowHttp: config.NODE_ENV !== 'production', allowPrivate: config.NOTIFY_WEBHOOK_ALLOW_PRIVATE };
}

/** Addresses that are not on the public internet (RFC 6890 special-purpose ranges that matter for SSRF). */
const NON_PUBLIC = new net.BlockList();
for (const [net4, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NON_PUBLIC.addSubnet(net4, bits, 'ipv4');
for (const [net6, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  NON_PUBLIC.addSubnet(net6, bits, 'ipv6');

export function isNonPublicAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  // IPv4-mapped IPv6 (`::ffff:127.0.0.1`, which URL parsing turns into `::ffff:7f00:1`): never a plain public receiver.
  // (Not a BlockList subnet: BlockList matches IPv4 addresses against IPv4-mapped IPv6 rules, so it would block them all.)
  if (family === 6 && /^::ffff:/i.test(address)) return true;
  return NON_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Why this URL may not receive webhooks under `policy`, or null. (Names are checked again when they resolve.) */
export function webhookUrlProblem(url: string, policy: WebhookPolicy): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (u.protocol !== 'https:' && !(policy.allowHttp && u.protocol === 'http:'))
    return `scheme ${u.protocol} is not allowed (https only outside development)`;
  if (u.username || u.password) return 'credentials in the URL are not allowed';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!policy.allowPrivate && isNonPublicAddress(host))
    return `address ${host} is not public (set NOTIFY_WEBHOOK_ALLOW_PRIVATE=true to allow)`;
  return null;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
/** A dns.lookup for the socket that refuses names resolving to a non-public address. */
function publicOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => isNonPublicAddress(a.address));
    if (bad)
      return callback(
        Object.assign(
          new WebhookRefusedError(
            `${hostname} resolves to ${bad.address}, which is not public (set NOTIFY_WEBHOOK_ALLOW_PRIVATE=true to allow)`,
          ),
          { code: 'EWEBHOOKREFUSED' },
        ),
        [],
      );
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
    callback(null, first.address, first.family);
  });
}

/**
 * POSTs once; any non-2xx (including a redirect, which is not followed) or network failure throws
 * WebhookDeliveryError (the activity retry policy does the backoff); a URL the policy forbids throws WebhookRefusedError.
 */
export async function postWebhook(
  url: string,
  secret: string | undefined,
  event: { id: string; type: string },
  policy: WebhookPolicy = STRICT_WEBHOOK_POLICY,
): Promise<number> {
  const problem = webhookUrlProblem(url, policy);
  if (problem) throw new WebhookRefusedError(`webhook URL refused: ${problem}`);
  const body = JSON.stringify(event);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'sage-tenant-sync',
    [EVENT_ID_HEADER]: event.id,
    [EVENT_TYPE_HEADER]: event.type,
  };
  if (secret) headers[SIGNATURE_HEADER] = signBody(secret, body);
  let status: number;
  try {
    const res = await got.post(url, {
      body,
      headers,
      retry: { limit: 0 },
      timeout: { request: 10_000 },
      throwHttpErrors: true,
      followRedirect: false,
      ...(policy.allowPrivate ? {} : { dnsLookup: publicOnlyLookup as never }),
    });
    status = res.statusCode;
  } catch (err) {
    if (err instanceof HTTPError) throw new WebhookDeliveryError(`webhook answered HTTP ${err.response.statusCode}`);
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof WebhookRefusedError) throw new WebhookRefusedError(`webhook URL refused: ${cause.message}`);
    throw new WebhookDeliveryError(`webhook not reachable: ${(err as Error).message}`);
  }
  if (status < 200 || status > 299)
    throw new WebhookDeliveryError(`webhook answered HTTP ${status} (redirects are not followed)`);
  return status;
}
