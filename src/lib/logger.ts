/**
 * One pino logger for every process. Redaction is on by default and has two layers:
 * - by key: a token, code, secret, password, cookie or Authorization/subscription-key header is replaced wherever it
 *   appears in a log object, its bindings or a logged error, at any depth;
 * - by content: every string (message, printf arguments, string fields such as a quoted HTTP body or a callback URL,
 *   error messages and stacks) goes through `redactText`, which scrubs bearer/basic credentials, JWTs and
 *   `key=value` / `"key": "value"` secrets.
 * `state` and `code` are also ordinary words (a connection's state, an error code), so under those keys values that look
 * like enum codes (`reauthorization_required`, `RUNNING`, `ECONNRESET`, 429) stay readable and anything else, such as an
 * OAuth state nonce or authorization code, is redacted.
 */
import { format } from 'node:util';
import { pino, stdSerializers, type DestinationStream, type Logger } from 'pino';

export const REDACTED = '[REDACTED]';

/** Keys (compared lower-case, `-` and `_` ignored) whose values are always secret. */
const SECRET_KEYS = new Set(
  [
    'access_token',
    'refresh_token',
    'id_token',
    'token',
    'tokens',
    'client_secret',
    'secret',
    'password',
    'authorization',
    'proxy-authorization',
    'cookie',
    'set-cookie',
    'code_verifier',
    'ocp-apim-subscription-key',
    'subscription_key',
    'api_key',
    'x-api-key',
    'token_encryption_key',
    'encryption_key',
    'key_material',
    'assertion',
  ].map((k) => k.replace(/[-_]/g, '')),
);
/** Keys that are secret unless the value looks like an enum code. */
const AMBIGUOUS_KEYS = new Set(['code', 'state', 'oauthstate', 'authorizationcode']);
const ENUM_LIKE = /^(?:[a-z]+(?:_[a-z]+)*|[A-Z]+(?:_[A-Z0-9]+)*|E[A-Z0-9_]+|\d{1,4})$/;

/**
 * pino's own path redaction, for what `formatters.log` never sees: child-logger bindings. Spelled as the secrets are
 * usually spelled; `formatters.log` covers every spelling and depth for log objects.
 */
const BINDING_PATHS = [
  'access_token',
  'accessToken',
  'refresh_token',
  'refreshToken',
  'id_token',
  'idToken',
  'token',
  'tokens',
  'client_secret',
  'clientSecret',
  'secret',
  'password',
  'authorization',
  'Authorization',
  'cookie',
  'code_verifier',
  'subscriptionKey',
].flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

const normaliseKey = (k: string) => k.toLowerCase().replace(/[-_]/g, '');

function redactValue(key: string, value: unknown): unknown | undefined {
  const k = normaliseKey(key);
  if (SECRET_KEYS.has(k) || /(?:secret|password|accesstoken|refreshtoken|idtoken)$/.test(k)) {
    return value === null || value === undefined ? value : REDACTED;
  }
  if (AMBIGUOUS_KEYS.has(k)) {
    if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean') return value;
    return typeof value === 'string' && ENUM_LIKE.test(value) ? value : REDACTED;
  }
  return undefined; // not decided by the key
}

/** Scrubs bearer/basic credentials, JWT-looking strings and `key=value` secrets out of free text. */
export function redactText(text: string): string {
  return text
    .replace(/\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}/gi, `$1$2${REDACTED}`)
    .replace(/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED)
    .replace(
      /\b(access_token|refresh_token|id_token|client_secret|code|token|code_verifier|state|password|subscription[-_]key|ocp-apim-subscription-key)(\\?["']?\s*[=:]\s*\\?["']?)([^"'\\&\s,}]+)/gi,
      (m, key: string, sep: string, value: string) =>
        /^(state|code)$/i.test(key) && ENUM_LIKE.test(value) ? m : `${key}${sep}${REDACTED}`,
    );
}

const MAX_DEPTH = 12;

/** Returns a scrubbed copy of any loggable value; never mutates the caller's objects. */
export function scrub(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Date) return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[depth limit]';
  seen.add(value);
  if (value instanceof Error) return scrub(stdSerializers.err(value), depth, seen);
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1, seen));
  const source =
    typeof (value as { toJSON?: unknown }).toJSON === 'function' ? (value as { toJSON(): unknown }).toJSON() : value;
  if (source === null || typeof source !== 'object') return scrub(source, depth + 1, seen);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(source as Record<string, unknown>)) {
    const byKey = redactValue(k, v);
    out[k] = byKey !== undefined ? byKey : scrub(v, depth + 1, seen);
  }
  return out;
}

function scrubObject(obj: Record<string, unknown>): Record<string, unknown> {
  return scrub(obj) as Record<string, unknown>;
}

export function createLogger(opts: { level?: string; name?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      name: opts.name,
      redact: { paths: BINDING_PATHS, censor: REDACTED },
      formatters: {
        level: (label) => ({ level: label }),
        // Runs before serializers; Errors inside are serialized and scrubbed by `scrub` itself.
        log: scrubObject,
        bindings: scrubObject,
      },
      hooks: {
        logMethod(args, method) {
          const a = [...args] as unknown[];
          const first = a[0];
          const hasObject = first !== null && typeof first === 'object';
          const msgIndex = hasObject ? 1 : 0;
          // Interpolate printf arguments ourselves so a secret passed as `%s` is scrubbed in the final text.
          if (typeof a[msgIndex] === 'string') {
            const text =
              a.length > msgIndex + 1
                ? format(...(a.slice(msgIndex) as [string, ...unknown[]]))
                : (a[msgIndex] as string);
            a.splice(msgIndex, a.length - msgIndex, redactText(text));
          } else if (hasObject) {
            // pino would copy an error's raw message into `msg`; give it the scrubbed one instead.
            const err = first instanceof Error ? first : (first as { err?: unknown }).err;
            if (err instanceof Error) a.splice(1, a.length - 1, redactText(err.message));
          }
          return method.apply(this, a as Parameters<typeof method>);
        },
      },
      serializers: {
        err: (err: unknown) => scrub(err instanceof Error ? stdSerializers.err(err) : err),
      },
    },
    opts.destination,
  );
}

let root: Logger | undefined;
export function logger(): Logger {
  root ??= createLogger({ name: 'sage-sync' });
  return root;
}
