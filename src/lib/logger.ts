/**
 * One pino logger for every process. Redaction is on by default: token, code, secret and Authorization fields are
 * replaced wherever they appear in the first levels of a log object, and `redactText` scrubs free text such as error
 * messages that may quote a Sage response.
 */
import { pino, stdSerializers, type DestinationStream, type Logger } from 'pino';

export const REDACTED = '[REDACTED]';

const SECRET_KEYS = [
  'access_token', 'accessToken', 'refresh_token', 'refreshToken', 'id_token', 'idToken', 'token', 'code', 'client_secret',
  'clientSecret', 'secret', 'password', 'authorization', 'Authorization', 'cookie', 'set-cookie', 'code_verifier',
  'ocp-apim-subscription-key', 'subscriptionKey', 'TOKEN_ENCRYPTION_KEY', 'state',
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of SECRET_KEYS) {
    const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
    const join = (prefix: string) => (key.startsWith('[') ? `${prefix}${key}` : `${prefix}.${key}`);
    paths.push(key.startsWith('[') ? key.slice(2, -2) : key);
    paths.push(join('*'), join('*.*'), join('*.*.*'));
  }
  return paths;
}

/** Scrubs bearer tokens, JWT-looking strings and `key=value` secrets out of free text. */
export function redactText(text: string): string {
  return text
    .replace(/(bearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${REDACTED}`)
    .replace(/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED)
    .replace(
      /\b(access_token|refresh_token|id_token|client_secret|code|token|code_verifier|state)(["']?\s*[=:]\s*["']?)[^"'&\s,}]+/gi,
      `$1$2${REDACTED}`,
    );
}

export function createLogger(opts: { level?: string; name?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      name: opts.name,
      redact: { paths: redactPaths(), censor: REDACTED },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // Error messages and free-text messages can quote an HTTP body; scrub them too.
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? redactText(a) : a)) as typeof args;
          return method.apply(this, scrubbed);
        },
      },
      serializers: {
        err: (err: unknown) => {
          const s = stdSerializers.err(err as Error);
          return { ...s, message: redactText(String(s.message ?? '')), stack: s.stack ? redactText(s.stack) : undefined };
        },
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
