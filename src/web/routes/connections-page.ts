/**
 * The operator's connections page (`GET /connections`, `/` redirects there) and its form actions:
 * `POST /connections/:provider/:tenantId/sync-now` (signal `syncNow`) and `.../disconnect` (signal `disconnect`), each
 * answering 303 back to the page with a short notice. `GET /api/connections` gives the same data as JSON.
 *
 * All of these are operator routes (security.ts). The forms carry a CSRF token and the actions are refused unless the
 * request is same-origin (security.ts `sameOriginGuard`), so another site cannot post them through an operator's
 * browser that has the Basic login cached.
 */
import formbody from '@fastify/formbody';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { listConnections } from '../../lib/connection-overview.js';
import { connectionWorkflowId, disconnectSignal, Provider, syncNowSignal, TenantId } from '../../messages.js';
import { sameOriginGuard } from '../security.js';
import type { WebDeps } from '../server.js';
import { renderConnectionsPage, type PageNotice } from '../views/connections.js';

const Params = z.object({ provider: Provider, tenantId: TenantId });
const SyncNowBody = z.object({ mode: z.enum(['incremental', 'full']).optional(), _csrf: z.string().optional() });
const DisconnectBody = z.object({ revoke: z.string().optional(), _csrf: z.string().optional() });

/** Notices travel as codes, never as free text, so a crafted link cannot put words on the page. */
const NOTICES: Record<string, (t: string) => PageNotice> = {
  sync_requested: (t) => ({
    kind: 'ok',
    text: `Sync requested for ${t}. Its results appear here when the run finishes.`,
  }),
  disconnect_requested: (t) => ({ kind: 'ok', text: `Disconnect requested for ${t}.` }),
  not_found: (t) => ({ kind: 'error', text: `No running connection workflow for ${t}.` }),
  failed: (t) => ({ kind: 'error', text: `The request for ${t} failed; see the web server log.` }),
};

const PageQuery = z.object({
  done: z.string().optional(),
  tenant: z.string().max(200).optional(),
  refresh: z.coerce.number().int().min(2).max(300).optional(),
});

export function connectionsPageRoutes(deps: WebDeps): FastifyPluginAsync {
  return async (app) => {
    if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) await app.register(formbody);
    const guard = sameOriginGuard(app, deps.config);

    app.get('/', async (_req, reply) => reply.redirect('/connections', 302));

    app.get('/connections', async (req, reply) => {
      const q = PageQuery.safeParse(req.query);
      const query = q.success ? q.data : {};
      let connections: Awaited<ReturnType<typeof listConnections>> = [];
      let loadError: string | null = null;
      try {
        connections = await listConnections(deps);
      } catch (err) {
        deps.log.warn({ err }, 'connections page: could not list connections');
        loadError = 'MongoDB is not reachable right now';
      }
      const noticeFor = query.done ? NOTICES[query.done] : undefined;
      const page = renderConnectionsPage({
        connections,
        notice: noticeFor ? noticeFor(query.tenant ?? '') : null,
        temporalUiUrl: deps.config.TEMPORAL_UI_URL,
        namespace: deps.config.TEMPORAL_NAMESPACE,
        refreshSeconds: query.refresh ?? null,
        now: new Date(),
        loadError,
        csrfToken: reply.generateCsrf(),
      });
      return reply
        .code(loadError ? 503 : 200)
        .header('content-type', 'text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(page);
    });

    app.get('/api/connections', async (_req, reply) =>
      reply.header('cache-control', 'no-store').send({ connections: await listConnections(deps) }),
    );

    async function act(
      req: FastifyRequest,
      reply: FastifyReply,
      send: (workflowId: string) => Promise<void>,
      done: string,
    ) {
      const p = Params.safeParse(req.params);
      if (!p.success) return reply.code(400).send(`bad connection: ${p.error.issues.map((i) => i.message).join('; ')}`);
      const who = `${p.data.tenantId} (${p.data.provider})`;
      const back = (code: string) =>
        reply.redirect(`/connections?${new URLSearchParams({ done: code, tenant: who }).toString()}`, 303);
      try {
        await send(connectionWorkflowId(p.data.provider, p.data.tenantId));
        return back(done);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return back('not_found');
        deps.log.error(
          { err, workflowId: connectionWorkflowId(p.data.provider, p.data.tenantId) },
          'connections page action failed',
        );
        return back('failed');
      }
    }

    app.post('/connections/:provider/:tenantId/sync-now', { preHandler: guard }, async (req, reply) => {
      const body = SyncNowBody.safeParse(req.body ?? {});
      if (!body.success) return reply.code(400).send('mode must be incremental or full');
      const mode = body.data.mode;
      return act(
        req,
        reply,
        (id) => deps.client.workflow.getHandle(id).signal(syncNowSignal, mode ? { mode } : {}),
        'sync_requested',
      );
    });

    app.post('/connections/:provider/:tenantId/disconnect', { preHandler: guard }, async (req, reply) => {
      const body = DisconnectBody.safeParse(req.body ?? {});
      // An unchecked checkbox is simply absent from the form: absent means "do not revoke".
      const revoke = body.success && body.data.revoke === 'true';
      return act(
        req,
        reply,
        (id) => deps.client.workflow.getHandle(id).signal(disconnectSignal, { revoke }),
        'disconnect_requested',
      );
    });
  };
}
