/**
 * Who may call the web server (contract §5), built from fastify's official plugins:
 *
 * - Every route is an operator route unless it says `config: { public: true }` (only `/oauth/callback` and `/healthz`):
 *   it answers 401 without `Authorization: Bearer <OPERATOR_TOKEN>` (@fastify/bearer-auth) or HTTP Basic credentials
 *   whose password is OPERATOR_TOKEN, any user name (@fastify/basic-auth, so a browser can log in), either one
 *   (@fastify/auth). Both compare SHA-256 digests in constant time.
 * - Cross-origin calls: only `TEMPORAL_UI_URL`'s origin, only for `/codec/*` (@fastify/cors); the preflight is answered
 *   before authentication because a browser sends it without credentials.
 * - Ambient credentials can be abused by another site (a browser re-sends cached Basic credentials on its own), so a
 *   request authenticated with Basic that changes something must also be same-origin: an `Origin` equal to ours (a
 *   missing or `null` Origin is not same-site), no `Sec-Fetch-Site: cross-site|same-site`, and a CSRF token
 *   (@fastify/csrf-protection with a signed, SameSite=Strict @fastify/cookie secret). A Bearer header is never sent
 *   by a browser on its own, so scripts that use it need neither.
 * - Security headers (@fastify/helmet): no framing anywhere, a CSP whose form-action allows only us and Sage's consent
 *   pages, no referrer to other sites.
 * - `/connect` is rate-limited (@fastify/rate-limit).
 */
import { createHash, hkdfSync, timingSafeEqual } from 'node:crypto';
import fastifyAuth from '@fastify/auth';
import fastifyBasicAuth from '@fastify/basic-auth';
import fastifyBearerAuth from '@fastify/bearer-auth';
import fastifyCookie from '@fastify/cookie';
import fastifyCors from '@fastify/cors';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requireOperatorToken, type Config } from '../config.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without the operator credential (contract §5: only /oauth/callback and /healthz). */
    public?: boolean;
  }
}

export const OPERATOR_REALM = 'sage-sync operator';
export const CSRF_FIELD = '_csrf';
/** `/connect` per client address: generous for an operator, a wall for a script minting consent links in a loop. */
export const CONNECT_RATE_LIMIT = { max: 30, timeWindow: '1 minute' } as const;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time check of a presented secret against OPERATOR_TOKEN (equal-length digests, so no length leak). */
export function operatorTokenMatches(expected: string, presented: string): boolean {
  return timingSafeEqual(digest(expected), digest(presented));
}

export function originOf(url: string): string {
  return new URL(url).origin;
}

/** Whether the request carries an ambient (browser-attached) credential rather than a deliberate Bearer header. */
export function usesAmbientCredential(req: FastifyRequest): boolean {
  return !/^Bearer /.test(req.headers.authorization ?? '');
}

/** Our own origins: the configured public one, and the one this request was addressed to. */
function ownOrigins(req: FastifyRequest, config: Config): string[] {
  const list = [originOf(config.PUBLIC_BASE_URL)];
  try {
    list.push(new URL(`${req.protocol}://${req.host}`).origin);
  } catch {
    /* a Host header that is not a host: only the configured origin counts */
  }
  return list;
}

/**
 * Why a state-changing request authenticated by an ambient credential is not same-origin, or null when it is. For a
 * POST the browser always sends `Origin`, so a missing or `null` one is refused; a GET navigation carries no Origin, so
 * there only `Sec-Fetch-Site` (set by the browser, not by pages) and the CSRF token decide.
 */
export function crossSiteReason(req: FastifyRequest, config: Config): string | null {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site: ${site}`;
  if (req.method === 'GET' || req.method === 'HEAD') return null;
  const origin = req.headers.origin;
  if (!origin) return 'no Origin header';
  if (origin === 'null') return 'Origin: null';
  return ownOrigins(req, config).includes(origin) ? null : `foreign Origin ${origin}`;
}

/**
 * preHandler for routes that change something (page actions, `/connect`): same-origin and a valid CSRF token when the
 * credential is ambient. Answers 403 (plain text, or `onRefused` for a friendlier page) and stops the request.
 */
export function sameOriginGuard(
  app: FastifyInstance,
  config: Config,
  onRefused?: (req: FastifyRequest, reply: FastifyReply, why: string) => FastifyReply,
) {
  const refuse = (req: FastifyRequest, reply: FastifyReply, why: string) => {
    req.log.warn({ why, url: req.routeOptions.url }, 'refused a cross-site or token-less request');
    return onRefused
      ? onRefused(req, reply, why)
      : reply.code(403).type('text/plain; charset=utf-8').send(`Refused: ${why}. Use the connections page.`);
  };
  return async function guard(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (!usesAmbientCredential(req)) return undefined;
    const why = crossSiteReason(req, config);
    if (why) return refuse(req, reply, why);
    const given =
      (req.body as Record<string, unknown> | undefined)?.[CSRF_FIELD] ??
      (req.query as Record<string, unknown> | undefined)?.[CSRF_FIELD];
    if (typeof given !== 'string' || given === '') return refuse(req, reply, 'missing CSRF token');
    // A token that does not match this browser's signed secret cookie: the plugin answers 403 itself (synchronously).
    let valid = false;
    app.csrfProtection(req, reply, () => (valid = true));
    return valid ? undefined : reply;
  };
}

/** A secret for signing cookies, derived from the operator credential so every web replica agrees without more config. */
function cookieSecret(token: string): string {
  return Buffer.from(
    hkdfSync('sha256', Buffer.from(token, 'utf8'), Buffer.alloc(0), 'sage-sync web cookie v1', 32),
  ).toString('base64');
}

export async function registerSecurity(app: FastifyInstance, config: Config): Promise<void> {
  const token = requireOperatorToken(config);
  const https = config.PUBLIC_BASE_URL.startsWith('https:');
  const uiOrigin = originOf(config.TEMPORAL_UI_URL);

  await app.register(fastifyHelmet, {
    frameguard: { action: 'deny' },
    // Not `no-referrer`: with it, browsers send `Origin: null` on our own form posts (Fetch spec), which we refuse.
    // `same-origin` still sends nothing to Sage or any other site.
    referrerPolicy: { policy: 'same-origin' },
    hsts: https,
    contentSecurityPolicy: {
      useDefaults: true,
      directives: {
        'default-src': ["'self'"],
        'frame-ancestors': ["'none'"],
        // The connect form leads (via our 302) to Sage's consent page; Chrome applies form-action to that redirect.
        // Sage sends the browser back to PUBLIC_BASE_URL, which is not 'self' when the page was opened under another name.
        'form-action': [
          "'self'",
          originOf(config.PUBLIC_BASE_URL),
          originOf(config.SAGE_ACCOUNTING_AUTH_URL),
          originOf(config.SAGE200_AUTH_URL),
        ],
        'upgrade-insecure-requests': https ? [] : null,
      },
    },
  });

  // Preflights first: the browser sends them without credentials (contract §5), so they must not meet the auth hook.
  await app.register(fastifyCors, {
    delegator: (req, cb) => {
      if (!(req.url ?? '').startsWith('/codec/')) return cb(null, { origin: false });
      cb(null, {
        origin: [uiOrigin],
        credentials: true,
        methods: ['POST'],
        allowedHeaders: ['content-type', 'x-namespace', 'authorization'],
        maxAge: 600,
      });
    },
  });

  await app.register(fastifyCookie, { secret: cookieSecret(token) });
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: 'sage_sync_csrf',
    cookieOpts: { path: '/', sameSite: 'strict', httpOnly: true, secure: https, signed: true },
    getToken: (req) => {
      const fromBody = (req.body as Record<string, unknown> | undefined)?.[CSRF_FIELD];
      const fromQuery = (req.query as Record<string, unknown> | undefined)?.[CSRF_FIELD];
      const value = fromBody ?? fromQuery ?? req.headers['x-csrf-token'];
      return typeof value === 'string' ? value : '';
    },
  });
  await app.register(fastifyRateLimit, { global: false });

  await app.register(fastifyAuth);
  await app.register(fastifyBearerAuth, {
    keys: [],
    addHook: false,
    verifyErrorLogLevel: null as unknown as string,
    auth: (presented: string) => operatorTokenMatches(token, presented),
  });
  await app.register(fastifyBasicAuth, {
    authenticate: { realm: OPERATOR_REALM },
    validate: async (_user, password) => {
      if (!operatorTokenMatches(token, password))
        throw Object.assign(new Error('wrong operator credential'), { statusCode: 401 });
    },
  });
  const operator = app.auth([app.verifyBearerAuth!, app.basicAuth], { relation: 'or' });
  app.addHook('onRequest', (req, reply, done) => {
    if (req.routeOptions.config?.public === true) return done();
    operator.call(app, req, reply, (err?: Error) => {
      if (!err) return done();
      // One answer for every failure (missing, malformed, wrong): it tells a caller nothing about the credential.
      reply
        .code(401)
        .header('www-authenticate', `Basic realm="${OPERATOR_REALM}", charset="UTF-8"`)
        .header('cache-control', 'no-store')
        .type('application/json; charset=utf-8')
        .send({
          error: 'unauthorized',
          message:
            'this is an operator route: send Authorization: Bearer <OPERATOR_TOKEN>, or HTTP Basic with OPERATOR_TOKEN as the password',
        });
    });
  });
}
