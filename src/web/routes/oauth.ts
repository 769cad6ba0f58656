/**
 * OAuth web flow (contract §5).
 *
 * `GET /connect?tenantId&provider[&edition][&country]` (operator route, rate-limited, same-origin with a CSRF token when
 * the credential is the browser's Basic login) starts the tenant's connection workflow if needed (update-with-start,
 * conflict policy USE_EXISTING), asks it for a fresh single-use, short-lived consent URL and redirects there (302). That
 * URL is the capability an operator may hand to the customer; minting one needs the operator. A closed (disconnected)
 * connection is started again with the settings of its last run (see connection-settings.ts), not the defaults.
 *
 * `GET /oauth/callback?code&state[&country]` (or `?error=`; public) checks the state's MAC and expiry BEFORE touching any
 * workflow: a forged or expired state gets 400 and changes nothing. A state this server already saw come back (a
 * replay, with `?code=` or `?error=`) gets 400 too; otherwise the workflow's synchronous validator rejects an unknown or
 * already used state (400 again, nothing changed). Then the code is exchanged inside the workflow and a small page says
 * what happened, with Sage's reason on failure.
 */
import { WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  authorizationDeniedSignal,
  beginAuthorizationUpdate,
  completeAuthorizationUpdate,
  connectionWorkflowId,
  ConnectionStateSearchAttribute,
  Provider,
  SageProviderSearchAttribute,
  TenantId,
  TenantIdSearchAttribute,
  type ConnectionStatus,
} from '../../messages.js';
import { CONNECTION_REASONS, isConnectionReason } from '../../connection/reasons.js';
import { ErrorTypes, readFailureDetails } from '../../error-types.js';
import { COLLECTIONS } from '../../lib/mongo.js';
import { verifyState } from '../../tokens/oauth-state.js';
import { html, type SafeHtml } from '../views/html.js';
import { SAGE200_EDITIONS, recordedEdition, settingsForRestart } from '../connection-settings.js';
import { CONNECT_RATE_LIMIT, CSRF_FIELD, sameOriginGuard } from '../security.js';
import type { WebDeps } from '../server.js';

/** An empty form field (the page's "default" edition) means "not given". */
const blankIsAbsent = (v: unknown) => (v === '' ? undefined : v);
const ConnectQuery = z
  .object({
    tenantId: TenantId,
    provider: Provider,
    edition: z.preprocess(
      blankIsAbsent,
      z.enum(SAGE200_EDITIONS, { message: `edition must be one of ${SAGE200_EDITIONS.join(', ')}` }).optional(),
    ),
    country: z.preprocess(
      blankIsAbsent,
      z
        .string()
        .regex(/^[A-Za-z]{2}$/)
        .optional(),
    ),
    [CSRF_FIELD]: z.string().max(200).optional(),
  })
  .strict()
  .refine((q) => q.provider === 'sage-200' || q.edition === undefined, {
    message: 'edition applies to provider sage-200 only',
    path: ['edition'],
  });
const CallbackQuery = z.object({
  code: z.string().min(1).max(4096).optional(),
  state: z.string().min(1).max(1024).optional(),
  country: z.string().max(8).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(1000).optional(),
});

function page(reply: FastifyReply, status: number, title: string, body: SafeHtml): FastifyReply {
  const doc = html`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}code{background:#f3f3f3;padding:0 .25rem}</style>
</head><body><h1>${title}</h1>${body}<p><a href="/connections">All connections</a></p></body></html>`;
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(doc.value);
}

const reasonText = (r: string | null) => (r ? `${r}${isConnectionReason(r) ? `: ${CONNECTION_REASONS[r]}` : ''}` : '');

/**
 * States whose callback this server already handled (a small collection keyed by the state's nonce). Entries are
 * useless once the state has expired, so old ones are dropped as new ones arrive.
 */
function seenStates(deps: WebDeps) {
  const coll = () => deps.mongo.db.collection<{ _id: string; expiresAt: Date }>(COLLECTIONS.oauthCallbacks);
  return {
    async has(nonce: string): Promise<boolean> {
      return (await coll().findOne({ _id: nonce })) !== null;
    },
    /** Records the nonce; false when it was already recorded (a duplicate key means someone answered first). */
    async add(nonce: string, expiresAt: number): Promise<boolean> {
      try {
        await coll().insertOne({ _id: nonce, expiresAt: new Date(expiresAt) });
      } catch (err) {
        if ((err as { code?: number }).code === 11000) return false;
        throw err;
      }
      void coll()
        .deleteMany({ expiresAt: { $lt: new Date(Date.now() - 3_600_000) } })
        .catch(() => {});
      return true;
    },
  };
}

export function oauthRoutes(deps: WebDeps): FastifyPluginAsync {
  const { client, config, log } = deps;
  const seen = seenStates(deps);
  return async (app) => {
    /** A browser that arrives without a token (a typed or pasted link) gets a page that asks before anything is minted. */
    const confirmPage = (req: FastifyRequest, reply: FastifyReply, why: string): FastifyReply => {
      const q = ConnectQuery.safeParse(req.query);
      if (!q.success || why !== 'missing CSRF token')
        return page(
          reply,
          403,
          'Refused',
          html`<p>This request came from another site (${why}). Nothing was changed. Start from the connections page.</p>`,
        );
      const token = reply.generateCsrf();
      const { tenantId, provider, edition, country } = q.data;
      return page(
        reply,
        403,
        'Confirm the connection',
        html`<p>Send a consent link for tenant <code>${tenantId}</code> (<code>${provider}</code>) to Sage?</p>
<form method="get" action="/connect"><input type="hidden" name="tenantId" value="${tenantId}"><input type="hidden" name="provider" value="${provider}">${
          edition ? html`<input type="hidden" name="edition" value="${edition}">` : ''
        }${country ? html`<input type="hidden" name="country" value="${country}">` : ''}<input type="hidden" name="${CSRF_FIELD}" value="${token}"><button type="submit">Continue to Sage</button></form>`,
      );
    };
    const connectGuard = sameOriginGuard(app, config, confirmPage);

    app.get('/connect', { config: { rateLimit: CONNECT_RATE_LIMIT }, preHandler: connectGuard }, async (req, reply) => {
      const q = ConnectQuery.safeParse(req.query);
      if (!q.success)
        return page(
          reply,
          400,
          'Cannot connect',
          html`<p>${q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}</p>`,
        );
      const { tenantId, provider, country, edition } = q.data;
      const workflowId = connectionWorkflowId(provider, tenantId);
      try {
        const running = await client.workflow
          .getHandle(workflowId)
          .describe()
          .then((d) => d.status.name === 'RUNNING')
          .catch((err: unknown) => {
            if (err instanceof WorkflowNotFoundError) return false;
            throw err;
          });
        if (running && edition) {
          // The edition is part of the running workflow's settings; changing it silently would sync the wrong API.
          const current = await recordedEdition(deps.mongo, workflowId);
          if (current && current !== edition) {
            return page(
              reply,
              409,
              'Edition differs',
              html`<p>Tenant <code>${tenantId}</code> is connected with Sage 200 edition <code>${current}</code>. Disconnect it first to connect it with <code>${edition}</code>.</p>`,
            );
          }
        }
        // A running workflow keeps its own settings (USE_EXISTING ignores these args); a closed one restarts with its last ones.
        const settings = running
          ? edition
            ? { sage200: { edition } }
            : {}
          : await settingsForRestart(deps, workflowId, edition);
        const result = await client.workflow.executeUpdateWithStart(beginAuthorizationUpdate, {
          args: [country ? { country } : {}],
          startWorkflowOperation: new WithStartWorkflowOperation('tenantConnection', {
            workflowId,
            taskQueue: config.TEMPORAL_TASK_QUEUE,
            args: [{ ...settings, tenantId, provider }],
            workflowIdConflictPolicy: 'USE_EXISTING',
            typedSearchAttributes: [
              { key: TenantIdSearchAttribute, value: tenantId },
              { key: SageProviderSearchAttribute, value: provider },
              { key: ConnectionStateSearchAttribute, value: 'awaiting_authorization' },
            ],
          }),
        });
        return reply.header('cache-control', 'no-store').redirect(result.authorizationUrl, 302);
      } catch (err) {
        log.warn({ err, workflowId }, 'connect failed');
        return page(reply, 503, 'Cannot connect right now', html`<p>${(err as Error).message}</p>`);
      }
    });

    app.get('/oauth/callback', { config: { public: true } }, async (req, reply) => {
      const q = CallbackQuery.safeParse(req.query);
      if (!q.success || !q.data.state)
        return page(
          reply,
          400,
          'Invalid request',
          html`<p>The callback has no valid <code>state</code>. Nothing was changed.</p>`,
        );
      const { state, code, error } = q.data;
      const verified = verifyState(config, state);
      if (!verified.ok) {
        log.warn({ reason: verified.reason }, 'oauth callback with a bad state');
        return page(
          reply,
          400,
          'Invalid or expired link',
          html`<p>This authorization link is ${verified.reason === 'expired' ? 'expired' : 'not valid'}. Nothing was changed. Start again from the connect page.</p>`,
        );
      }
      const replayed = () =>
        page(
          reply,
          400,
          'Invalid or used link',
          html`<p>This authorization link was already used. Nothing was changed. Start again from the connect page.</p>`,
        );
      if (await seen.has(verified.nonce)) return replayed();
      const handle = client.workflow.getHandle(verified.workflowId);
      if (error) {
        // A signal cannot say "unknown state", so single use is enforced here: the first answer for a state wins.
        if (!(await seen.add(verified.nonce, verified.expiresAt))) return replayed();
        try {
          await handle.signal(authorizationDeniedSignal, {
            state,
            error,
            ...(q.data.error_description ? { description: q.data.error_description } : {}),
          });
        } catch (err) {
          if (err instanceof WorkflowNotFoundError)
            return page(reply, 400, 'Unknown connection', html`<p>Nothing was changed.</p>`);
          throw err;
        }
        return page(
          reply,
          422,
          'Sage did not authorize the connection',
          html`<p>Sage answered <code>${error}</code>${q.data.error_description ? html` — ${q.data.error_description}` : ''}.</p><p>You can try again from the connect page.</p>`,
        );
      }
      if (!code)
        return page(
          reply,
          400,
          'Invalid request',
          html`<p>The callback has no <code>code</code>. Nothing was changed.</p>`,
        );
      let status: ConnectionStatus;
      try {
        status = await handle.executeUpdate(completeAuthorizationUpdate, {
          args: [{ code, state, ...(q.data.country ? { country: q.data.country } : {}) }],
        });
        await seen.add(verified.nonce, verified.expiresAt); // the workflow consumed the state; a later ?error= replay is a replay
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          return page(reply, 400, 'Unknown connection', html`<p>Nothing was changed.</p>`);
        if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
          // [workflow engineer, issue 12 item 7 — minimal edit] a refused re-consent: 403 naming the reason (contract §5).
          if (err.cause.type === ErrorTypes.ReconsentRefused) {
            const reason = readFailureDetails(err.cause.details).reason ?? null;
            return page(
              reply,
              403,
              'Re-consent refused',
              html`<p>Reason: <code>${reasonText(reason)}</code></p><p>${err.cause.message}.</p>`,
            );
          }
          const retry = err.cause.type === ErrorTypes.RetryLater;
          return page(
            reply,
            retry ? 409 : 400,
            retry ? 'Busy' : 'Invalid or used link',
            html`<p>${err.cause.message}. Nothing was changed.</p>`,
          );
        }
        log.error({ err, workflowId: verified.workflowId }, 'completing authorization failed');
        return page(reply, 503, 'Could not complete the authorization', html`<p>${(err as Error).message}</p>`);
      }
      if (status.state === 'connected') {
        const parts = status.partitions.map(
          (p) => html`<li>${p.name} <code>${p.id}</code>${p.siteId ? html` (site <code>${p.siteId}</code>)` : ''}</li>`,
        );
        return page(
          reply,
          200,
          'Connected to Sage',
          html`<p>Tenant <code>${status.tenantId}</code> is connected to <code>${status.provider}</code>.</p>
<p>${status.connection?.available ? 'Connection available.' : html`Connection not available: ${reasonText(status.connection?.reason ?? null)}`}</p>
${parts.length ? html`<p>Partitions being synced:</p><ul>${parts}</ul>` : ''}`,
        );
      }
      return page(
        reply,
        422,
        'Sage did not complete the authorization',
        html`<p>Reason: <code>${reasonText(status.reason)}</code></p>${status.lastError ? html`<p>Sage said: ${status.lastError}</p>` : ''}<p>Common causes: a redirect URI that does not match the registered one exactly, a country that does not match the business, a code used twice or older than 60 seconds.</p>`,
      );
    });
  };
}
