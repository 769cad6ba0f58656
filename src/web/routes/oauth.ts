/**
 * OAuth web flow (contract §5).
 *
 * `GET /connect?tenantId&provider[&country]` starts the tenant's connection workflow if needed (update-with-start,
 * conflict policy USE_EXISTING), asks it for a fresh single-use consent URL and redirects there (302).
 *
 * `GET /oauth/callback?code&state[&country]` (or `?error=`) checks the state's MAC and expiry BEFORE touching any
 * workflow: a forged or expired state gets 400 and changes nothing. The workflow's synchronous validator then rejects an
 * unknown or already used state (400 again, nothing changed). Otherwise the code is exchanged inside the workflow and a
 * small page says what happened, with Sage's reason on failure.
 */
import { WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
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
import { verifyState } from '../../tokens/oauth-state.js';
import { REASONS } from '../../workflows/tenant-connection/machine.js';
import { html, type SafeHtml } from '../views/html.js';
import type { WebDeps } from '../server.js';

const ConnectQuery = z.object({ tenantId: TenantId, provider: Provider, country: z.string().regex(/^[A-Za-z]{2}$/).optional() });
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
  return reply.code(status).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(doc.value);
}

const reasonText = (r: string | null) => (r ? `${r}${r in REASONS ? `: ${REASONS[r as keyof typeof REASONS]}` : ''}` : '');

export function oauthRoutes(deps: WebDeps): FastifyPluginAsync {
  const { client, config, log } = deps;
  return async (app) => {
    app.get('/connect', async (req, reply) => {
      const q = ConnectQuery.safeParse(req.query);
      if (!q.success) return page(reply, 400, 'Cannot connect', html`<p>${q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}</p>`);
      const { tenantId, provider, country } = q.data;
      const workflowId = connectionWorkflowId(provider, tenantId);
      try {
        const result = await client.workflow.executeUpdateWithStart(beginAuthorizationUpdate, {
          args: [country ? { country } : {}],
          startWorkflowOperation: new WithStartWorkflowOperation('tenantConnection', {
            workflowId,
            taskQueue: config.TEMPORAL_TASK_QUEUE,
            args: [{ tenantId, provider }],
            workflowIdConflictPolicy: 'USE_EXISTING',
            typedSearchAttributes: [
              { key: TenantIdSearchAttribute, value: tenantId },
              { key: SageProviderSearchAttribute, value: provider },
              { key: ConnectionStateSearchAttribute, value: 'awaiting_authorization' },
            ],
          }),
        });
        return reply.redirect(result.authorizationUrl, 302);
      } catch (err) {
        log.warn({ err, workflowId }, 'connect failed');
        return page(reply, 503, 'Cannot connect right now', html`<p>${(err as Error).message}</p>`);
      }
    });

    app.get('/oauth/callback', async (req, reply) => {
      const q = CallbackQuery.safeParse(req.query);
      if (!q.success || !q.data.state) return page(reply, 400, 'Invalid request', html`<p>The callback has no valid <code>state</code>. Nothing was changed.</p>`);
      const { state, code, error } = q.data;
      const verified = verifyState(config, state);
      if (!verified.ok) {
        log.warn({ reason: verified.reason }, 'oauth callback with a bad state');
        return page(reply, 400, 'Invalid or expired link', html`<p>This authorization link is ${verified.reason === 'expired' ? 'expired' : 'not valid'}. Nothing was changed. Start again from the connect page.</p>`);
      }
      const handle = client.workflow.getHandle(verified.workflowId);
      if (error) {
        try {
          await handle.signal(authorizationDeniedSignal, { state, error, ...(q.data.error_description ? { description: q.data.error_description } : {}) });
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return page(reply, 400, 'Unknown connection', html`<p>Nothing was changed.</p>`);
          throw err;
        }
        return page(reply, 422, 'Sage did not authorize the connection', html`<p>Sage answered <code>${error}</code>${q.data.error_description ? html` — ${q.data.error_description}` : ''}.</p><p>You can try again from the connect page.</p>`);
      }
      if (!code) return page(reply, 400, 'Invalid request', html`<p>The callback has no <code>code</code>. Nothing was changed.</p>`);
      let status: ConnectionStatus;
      try {
        status = await handle.executeUpdate(completeAuthorizationUpdate, { args: [{ code, state, ...(q.data.country ? { country: q.data.country } : {}) }] });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return page(reply, 400, 'Unknown connection', html`<p>Nothing was changed.</p>`);
        if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
          // [workflow engineer, issue 12 item 7 — minimal edit] a refused re-consent: 403 naming the reason (contract §5).
          if (err.cause.type === 'ReconsentRefused') {
            const reason = (err.cause.details?.[0] as { reason?: string } | undefined)?.reason ?? null;
            return page(reply, 403, 'Re-consent refused', html`<p>Reason: <code>${reasonText(reason)}</code></p><p>${err.cause.message}.</p>`);
          }
          const retry = err.cause.type === 'RetryLater';
          return page(reply, retry ? 409 : 400, retry ? 'Busy' : 'Invalid or used link', html`<p>${err.cause.message}. Nothing was changed.</p>`);
        }
        log.error({ err, workflowId: verified.workflowId }, 'completing authorization failed');
        return page(reply, 503, 'Could not complete the authorization', html`<p>${(err as Error).message}</p>`);
      }
      if (status.state === 'connected') {
        const parts = status.partitions.map((p) => html`<li>${p.name} <code>${p.id}</code>${p.siteId ? html` (site <code>${p.siteId}</code>)` : ''}</li>`);
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
