/**
 * The admin API (`/__admin`, JSON) and the same operations as functions (`sim.admin.*`): seed/reset, users and
 * partitions, consent plans, direct grants, revocation, data mutation, ground truth, clock, settings, faults, counters.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { SimProvider } from './data.js';
import type { FaultRule, FaultRuleInput } from './faults.js';
import { accountingTokenBody } from './sage-accounting/oauth.js';
import { sage200TokenBody } from './sage200/oauth.js';
import { SAGE200_AUDIENCE } from './apps.js';
import {
  parseProvider,
  SimError,
  type CreateUserOptions,
  type MutateRequest,
  type ProviderSettings,
  type SimulatorSettings,
  type SimulatorState,
} from './state.js';

const ProviderField = z.string().transform((v) => parseProvider(v));
const IdList = z.array(z.union([z.string(), z.number()]).transform(String));
const Count = z.number().int().min(0).max(2_000_000);

const ProviderSettingsPatch = z
  .object({
    accessTokenTtlSeconds: z.number().int().min(1),
    refreshTokenTtlSeconds: z.number().int().min(1),
    codeTtlSeconds: z.number().int().min(1),
    maxConcurrentRequests: z.number().int().min(0),
    concurrencyRetryAfterSeconds: z.number().int().min(0).nullable(),
  })
  .partial()
  .strict();

export const Schemas = {
  reset: z
    .object({
      seed: z.number().int().optional(),
      customersPerPartition: Count.optional(),
      usersPerProvider: z.number().int().min(0).max(100).optional(),
    })
    .strict(),
  createUser: z
    .object({
      provider: ProviderField,
      partitions: z.number().int().min(1).max(50).optional(),
      customersPerPartition: Count.optional(),
      country: z
        .string()
        .regex(/^[A-Za-z]{2}$/)
        .optional(),
      edition: z.enum(['sage200', 'sage200extra']).optional(),
    })
    .strict(),
  nextConsent: z
    .object({
      provider: ProviderField,
      userId: z.string().optional(),
      deny: z.string().min(1).optional(),
      denyDescription: z.string().optional(),
    })
    .strict(),
  mintGrant: z
    .object({
      provider: ProviderField,
      userId: z.string().optional(),
      scope: z.string().optional(),
      offline: z.boolean().optional(),
    })
    .strict(),
  revoke: z
    .object({
      provider: ProviderField,
      grantId: z.string().optional(),
      refreshToken: z.string().optional(),
      userId: z.string().optional(),
    })
    .strict()
    .refine((v) => [v.grantId, v.refreshToken, v.userId].filter(Boolean).length === 1, {
      message: 'give exactly one of grantId, refreshToken, userId',
    }),
  mutate: z
    .object({
      provider: ProviderField,
      partitionId: z.union([z.string(), z.number()]).transform(String),
      userId: z.string().optional(),
      update: z.union([Count, IdList]).optional(),
      delete: z.union([Count, IdList]).optional(),
      create: Count.optional(),
    })
    .strict(),
  clock: z.object({ offsetSeconds: z.number().optional(), advanceSeconds: z.number().optional() }).strict(),
  settings: z
    .object({
      sageAccounting: ProviderSettingsPatch.optional(),
      sage200: ProviderSettingsPatch.extend({
        requireSubscriptionKey: z.boolean().optional(),
        revokeGrantOnRefreshReuse: z.boolean().optional(),
      }).optional(),
    })
    .strict(),
  expireAccessTokens: z.object({ provider: ProviderField.optional(), grantId: z.string().optional() }).strict(),
  subscription: z.object({ businessId: z.string().min(1), active: z.boolean() }).strict(),
  siteAccess: z
    .object({
      userId: z.string().min(1),
      companyId: z.union([z.string(), z.number()]).transform(String),
      reachable: z.boolean(),
    })
    .strict(),
};

export class SimulatorAdmin {
  constructor(private readonly state: SimulatorState) {}

  reset(input: z.input<typeof Schemas.reset> = {}) {
    this.state.reset(Schemas.reset.parse(input));
    return { ok: true, seed: this.state.seed, customersPerPartition: this.state.customersPerPartition };
  }

  users(provider?: string) {
    const p = provider ? parseProvider(provider) : undefined;
    return {
      users: [...this.state.users.values()]
        .filter((u) => !p || u.provider === p)
        .map((u) => this.state.describeUser(u)),
    };
  }

  createUser(input: z.input<typeof Schemas.createUser>) {
    const { provider, ...opts } = Schemas.createUser.parse(input);
    return this.state.describeUser(this.state.createUser(provider, opts as CreateUserOptions));
  }

  partitions(provider?: string, userId?: string) {
    const users = [...this.state.users.values()].filter(
      (u) => (!provider || u.provider === parseProvider(provider)) && (!userId || u.id === userId),
    );
    return {
      partitions: users.flatMap((u) =>
        u.partitionIds.map((pid) => ({
          provider: u.provider,
          userId: u.id,
          ...this.state.describePartition(u.provider, pid),
        })),
      ),
    };
  }

  /** The next consent for `provider` goes to `userId` (default: a fresh user) or is denied with `deny` as the error. */
  nextConsent(input: z.input<typeof Schemas.nextConsent>) {
    const { provider, ...plan } = Schemas.nextConsent.parse(input);
    this.state.planConsent(provider, plan);
    return { ok: true };
  }

  grants(provider?: string, userId?: string) {
    const p = provider ? parseProvider(provider) : undefined;
    return {
      grants: [...this.state.grants.values()]
        .filter((g) => (!p || g.provider === p) && (!userId || g.userId === userId))
        .map((g) => this.state.grantSummary(g)),
    };
  }

  /** A new grant without the browser dance; returns the provider's token response under `token`. */
  mintGrant(input: z.input<typeof Schemas.mintGrant>) {
    const { provider, userId, scope, offline } = Schemas.mintGrant.parse(input);
    const user = userId ? this.state.user(userId, provider) : this.state.createUser(provider);
    const s = this.state;
    const g =
      provider === 'sage-accounting'
        ? s.createGrant(provider, user.id, scope ?? 'full_access', null, true)
        : s.createGrant(
            provider,
            user.id,
            scope ?? 'openid profile email offline_access',
            SAGE200_AUDIENCE,
            offline ?? (scope ?? 'offline_access').split(' ').includes('offline_access'),
          );
    s.counters.inc('consents', provider);
    const token = provider === 'sage-accounting' ? accountingTokenBody(s, g) : sage200TokenBody(s, g);
    return { ...s.grantSummary(g), user: s.describeUser(user), token };
  }

  /** Revokes as the user would (e.g. disconnecting the app in Sage): refresh and access tokens stop working. */
  revoke(input: z.input<typeof Schemas.revoke>) {
    const { provider, grantId, refreshToken, userId } = Schemas.revoke.parse(input);
    const s = this.state;
    let grants = [...s.grants.values()].filter((g) => g.provider === provider);
    if (grantId) grants = grants.filter((g) => g.id === grantId);
    if (userId) grants = grants.filter((g) => g.userId === userId);
    if (refreshToken) {
      const rec = s.tokens.get(refreshToken);
      grants = grants.filter((g) => rec?.grantId === g.id);
    }
    if (grants.length === 0) throw new SimError(404, 'no matching grant');
    const revoked: string[] = [];
    for (const g of grants) {
      if (g.revokedAt === null) revoked.push(g.id);
      s.revokeGrant(g, 'revoked_by_user');
    }
    return { revoked };
  }

  mutate(input: z.input<typeof Schemas.mutate>) {
    return this.state.mutate(Schemas.mutate.parse(input) as MutateRequest);
  }

  truth(provider: string, partitionId: string, userId?: string) {
    const p: SimProvider = parseProvider(provider);
    return { provider: p, partitionId, customers: this.state.truth(p, String(partitionId), userId) };
  }

  clock(input: z.input<typeof Schemas.clock> = {}) {
    const { offsetSeconds, advanceSeconds } = Schemas.clock.parse(input);
    if (offsetSeconds !== undefined) this.state.clockOffsetMs = offsetSeconds * 1000;
    if (advanceSeconds !== undefined) this.state.clockOffsetMs += advanceSeconds * 1000;
    return { now: new Date(this.state.now()).toISOString(), offsetSeconds: this.state.clockOffsetMs / 1000 };
  }

  settings(patch?: z.input<typeof Schemas.settings>): SimulatorSettings {
    if (patch) {
      const p = Schemas.settings.parse(patch);
      Object.assign(this.state.settings.sageAccounting, p.sageAccounting as Partial<ProviderSettings>);
      Object.assign(this.state.settings.sage200, p.sage200);
    }
    return structuredClone(this.state.settings);
  }

  /** Makes live access tokens expire now (the refresh tokens stay valid): the next API call gets 401. */
  expireAccessTokens(input: z.input<typeof Schemas.expireAccessTokens> = {}) {
    const { provider, grantId } = Schemas.expireAccessTokens.parse(input);
    let expired = 0;
    const now = this.state.now();
    for (const rec of this.state.tokens.values()) {
      if (rec.kind !== 'access' || rec.expiresAt <= now) continue;
      const g = this.state.grants.get(rec.grantId);
      if (!g || (provider && g.provider !== provider) || (grantId && g.id !== grantId)) continue;
      rec.expiresAt = now;
      expired++;
    }
    return { expired };
  }

  /** Lapses (or restores) a Sage Accounting business's subscription: its calls answer 401 `AuthorizationFailure`. */
  subscription(input: z.input<typeof Schemas.subscription>) {
    const { businessId, active } = Schemas.subscription.parse(input);
    if (!this.state.businesses.has(businessId)) throw new SimError(404, `unknown business ${businessId}`);
    if (active) this.state.lapsedBusinesses.delete(businessId);
    else this.state.lapsedBusinesses.add(businessId);
    return { businessId, active };
  }

  /** Takes a Sage 200 site/company out of (or back into) a user's reach: gone from `/sites`, data calls answer 401. */
  siteAccess(input: z.input<typeof Schemas.siteAccess>) {
    const { userId, companyId, reachable } = Schemas.siteAccess.parse(input);
    const u = this.state.user(userId, 'sage-200');
    if (!u.partitionIds.includes(companyId)) throw new SimError(404, `user ${userId} never had company ${companyId}`);
    const key = `${userId}:${companyId}`;
    if (reachable) this.state.removedSites.delete(key);
    else this.state.removedSites.add(key);
    return { userId, companyId, reachable };
  }

  addFaults(input: FaultRuleInput | FaultRuleInput[] | { rules: FaultRuleInput[] }): { rules: FaultRule[] } {
    const list = Array.isArray(input) ? input : 'rules' in input ? input.rules : [input];
    return { rules: list.map((r) => this.state.faults.add(r)) };
  }

  faults() {
    return { rules: this.state.faults.list() };
  }

  clearFaults(id?: string) {
    this.state.faults.remove(id);
    return { ok: true };
  }

  counters() {
    return this.state.counters.snapshot();
  }

  resetCounters() {
    this.state.counters.reset();
    return { ok: true };
  }

  issuedTokens() {
    return { tokens: [...this.state.issuedTokens], codes: [...this.state.issuedCodes] };
  }
}

export function adminRoutes(admin: SimulatorAdmin) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.setErrorHandler((err, request, reply) => {
      if (err instanceof SimError) return reply.code(err.statusCode).send({ error: err.message });
      if (err instanceof z.ZodError)
        return reply.code(400).send({
          error: 'invalid request',
          issues: err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
        });
      const status = (err as { statusCode?: number }).statusCode;
      if (status && status < 500) return reply.code(status).send({ error: (err as Error).message });
      request.log.error(err);
      return reply.code(500).send({ error: (err as Error).message });
    });
    type Q = { Querystring: Record<string, string | undefined> };
    const body = (b: unknown) => (b ?? {}) as never;

    app.get('/', async () => ({
      endpoints: [
        'POST /__admin/reset {seed?, customersPerPartition?, usersPerProvider?}',
        'GET /__admin/users?provider=',
        'POST /__admin/users {provider, partitions?, customersPerPartition?, country?, edition?}',
        'GET /__admin/partitions?provider=&userId=',
        'POST /__admin/next-consent {provider, userId?, deny?, denyDescription?}',
        'GET /__admin/grants?provider=&userId=',
        'POST /__admin/grants {provider, userId?, scope?, offline?}',
        'POST /__admin/revoke {provider, grantId | refreshToken | userId}',
        'POST /__admin/customers/mutate {provider, partitionId, userId?, update?: n|ids, delete?: n|ids, create?: n}',
        'GET /__admin/truth/customers?provider=&partitionId=&userId=',
        'GET|POST /__admin/clock {offsetSeconds? | advanceSeconds?}',
        'GET|POST /__admin/settings {sageAccounting?: {...}, sage200?: {...}}',
        'POST /__admin/expire-access-tokens {provider?, grantId?}',
        'POST /__admin/subscription {businessId, active} (Sage Accounting: lapse / restore a subscription)',
        'POST /__admin/site-access {userId, companyId, reachable} (Sage 200: remove / restore a site from a user)',
        'GET|POST|DELETE /__admin/faults, DELETE /__admin/faults/:id',
        'GET /__admin/counters, POST /__admin/counters/reset',
        'GET /__admin/issued-tokens',
      ],
    }));
    app.post('/reset', async (r) => admin.reset(body(r.body)));
    app.get<Q>('/users', async (r) => admin.users(r.query.provider));
    app.post('/users', async (r) => admin.createUser(body(r.body)));
    app.get<Q>('/partitions', async (r) => admin.partitions(r.query.provider, r.query.userId));
    app.post('/next-consent', async (r) => admin.nextConsent(body(r.body)));
    app.get<Q>('/grants', async (r) => admin.grants(r.query.provider, r.query.userId));
    app.post('/grants', async (r) => admin.mintGrant(body(r.body)));
    app.post('/revoke', async (r) => admin.revoke(body(r.body)));
    app.post('/customers/mutate', async (r) => admin.mutate(body(r.body)));
    app.get<Q>('/truth/customers', async (r) => {
      if (!r.query.provider || !r.query.partitionId) throw new SimError(400, 'provider and partitionId are required');
      return admin.truth(r.query.provider, r.query.partitionId, r.query.userId);
    });
    app.get('/clock', async () => admin.clock());
    app.post('/clock', async (r) => admin.clock(body(r.body)));
    app.get('/settings', async () => admin.settings());
    app.post('/settings', async (r) => admin.settings(body(r.body)));
    app.post('/expire-access-tokens', async (r) => admin.expireAccessTokens(body(r.body)));
    app.post('/subscription', async (r) => admin.subscription(body(r.body)));
    app.post('/site-access', async (r) => admin.siteAccess(body(r.body)));
    app.get('/faults', async () => admin.faults());
    app.post('/faults', async (r) => admin.addFaults(body(r.body)));
    app.delete('/faults', async () => admin.clearFaults());
    app.delete<{ Params: { id: string } }>('/faults/:id', async (r) => admin.clearFaults(r.params.id));
    app.get('/counters', async () => admin.counters());
    app.post('/counters/reset', async () => admin.resetCounters());
    app.get('/issued-tokens', async () => admin.issuedTokens());
  };
}
