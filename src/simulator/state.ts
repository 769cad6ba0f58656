/**
 * The simulator's whole state and the operations on it (used by the protocol handlers and the admin API): users and
 * their partitions, OAuth grants / codes / tokens, settings, clock, counters and faults. In memory only.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { resolveApps, type AppOverrides, type SimulatorApps } from './apps.js';
import { Counters } from './counters.js';
import {
  createCustomer,
  customerDetails,
  generatePartition,
  isCustomer,
  makeBusiness,
  makeSite,
  providerTime,
  type AccountingBusiness,
  type CustomerRecord,
  type PartitionData,
  type Sage200Site,
  type SimProvider,
} from './data.js';
import { FaultInjector } from './faults.js';
import { hash32, prng } from './random.js';

export type Edition = 'sage200' | 'sage200extra';

export interface SimUser {
  id: string;
  provider: SimProvider;
  index: number;
  /** Sage Accounting `requested_by_id` / Sage ID `sub`. */
  uuid: string;
  email: string;
  /** Sage Accounting: the country every business of this user is registered in. */
  country: string;
  /** Sage 200: the product the user's sites run on; API calls under the other edition get 401. */
  edition: Edition;
  /** Business ids (lead first) or Sage 200 company ids, as strings. */
  partitionIds: string[];
}

export interface Grant {
  id: string;
  provider: SimProvider;
  userId: string;
  scope: string;
  /** Sage 200: the audience asked for on authorize (null = none: the access token is not valid for the API). */
  audience: string | null;
  /** Whether a refresh token is issued (Sage Accounting: always; Sage 200: only with `offline_access`). */
  offline: boolean;
  createdAt: number;
  revokedAt: number | null;
  revokedReason: string | null;
  refreshCount: number;
  /** The only refresh token that works for this grant right now (rotation, no grace). */
  currentRefresh: string | null;
  refreshExpiresAt: number | null;
  tokens: Set<string>;
}

export interface AuthCode {
  code: string;
  provider: SimProvider;
  clientId: string;
  redirectUri: string;
  userId: string;
  scope: string;
  audience: string | null;
  offline: boolean;
  codeChallenge: string | null;
  codeChallengeMethod: 'S256' | 'plain' | null;
  expiresAt: number;
  usedAt: number | null;
}

export interface TokenRecord {
  kind: 'access' | 'refresh';
  grantId: string;
  expiresAt: number;
  issuedAt: number;
  /** Why it stopped working early, if it did. */
  killed: 'rotated' | 'revoked' | null;
}

export interface ProviderSettings {
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  codeTtlSeconds: number;
  /** Requests in flight above this get 429 (Sage Accounting documents 150 per app). 0 = no limit. */
  maxConcurrentRequests: number;
  /** Retry-After sent with concurrency 429s (null = no header, as Sage does not document one). */
  concurrencyRetryAfterSeconds: number | null;
}

export interface SimulatorSettings {
  sageAccounting: ProviderSettings;
  sage200: ProviderSettings & {
    requireSubscriptionKey: boolean;
    /** Auth0 breach detection: presenting a rotated-away refresh token revokes the whole grant. */
    revokeGrantOnRefreshReuse: boolean;
  };
}

export interface SimulatorStateOptions {
  seed?: number;
  apps?: AppOverrides;
  customersPerPartition?: number;
  usersPerProvider?: number;
  partitionsPerUser?: { sageAccounting?: number; sage200?: number };
  accessTokenTtlSeconds?: { sageAccounting?: number; sage200?: number };
  refreshTokenTtlSeconds?: { sageAccounting?: number; sage200?: number };
  requireSubscriptionKey?: boolean;
}

export interface ConsentPlan {
  userId?: string;
  deny?: string;
  denyDescription?: string;
}

export interface CreateUserOptions {
  partitions?: number;
  customersPerPartition?: number;
  /** Sage Accounting only. */
  country?: string;
  /** Sage 200 only. */
  edition?: Edition;
}

export interface MutateRequest {
  provider: SimProvider;
  partitionId: string;
  userId?: string;
  update?: number | string[];
  delete?: number | string[];
  create?: number;
}

export interface MutateResult {
  updated: string[];
  deleted: string[];
  created: string[];
  at: string;
}

export interface TruthCustomer {
  id: string;
  reference: string;
  name: string;
  email: string | null;
  currency: string;
  balance: number;
  address: { line1: string; line2: string | null; city: string; postalCode: string; country: string };
  creditLimit: number;
  created_at: string;
  updated_at: string;
  deleted: boolean;
  deleted_at: string | null;
}

export class SimError extends Error {
  constructor(
    public readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export const settingsKey = (p: SimProvider) =>
  (p === 'sage-accounting' ? 'sageAccounting' : 'sage200') as 'sageAccounting' | 'sage200';

export function parseProvider(v: unknown): SimProvider {
  if (v === 'sage-accounting' || v === 'sageAccounting' || v === 'sage_accounting') return 'sage-accounting';
  if (v === 'sage-200' || v === 'sage200' || v === 'sage_200') return 'sage-200';
  throw new SimError(400, `provider must be "sage-accounting" or "sage-200", got ${JSON.stringify(v)}`);
}

/** Sage Accounting shows whole seconds without a fraction: `2024-03-01T10:21:33Z`. */
export function accountingTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Sage 200 on the wire: no zone at all (UTC meant, Swagger says "(UTC)") and a variable fraction without trailing zeros,
 * as in Sage's own customer sample `"2016-07-08T15:28:48.66"`: `…:27.61`, `…:27.6`, `…:27`.
 */
export function sage200Time(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, (_, f: string) => {
    const t = f.replace(/0+$/, '');
    return t ? `.${t}` : '';
  });
}

/** Ground-truth timestamps (admin API) are unambiguous ISO-8601 UTC, not the wire form. */
export const formatTime = (p: SimProvider, ms: number) =>
  p === 'sage-accounting' ? accountingTime(ms) : new Date(ms).toISOString();

function base64url(buf: Buffer | string): string {
  return Buffer.from(buf).toString('base64url');
}

export class SimulatorState {
  apps: SimulatorApps;
  settings!: SimulatorSettings;
  seed!: number;
  customersPerPartition!: number;
  counters = new Counters();
  faults!: FaultInjector;
  clockOffsetMs = 0;

  users = new Map<string, SimUser>();
  businesses = new Map<string, AccountingBusiness>();
  sites = new Map<string, Sage200Site>();
  partitions = new Map<string, PartitionData>();
  grants = new Map<string, Grant>();
  codes = new Map<string, AuthCode>();
  tokens = new Map<string, TokenRecord>();
  /** Every access / refresh token ever issued, for leak scans. */
  issuedTokens: string[] = [];
  issuedCodes: string[] = [];
  /** Sage Accounting businesses whose subscription has lapsed: every call for them answers 401 "No active subscription". */
  lapsedBusinesses = new Set<string>();
  /** Sage 200 `userId:companyId` pairs taken out of the user's reach (no longer in `/sites`; data calls answer 401). */
  removedSites = new Set<string>();
  private consentPlans: Record<SimProvider, ConsentPlan[]> = { 'sage-accounting': [], 'sage-200': [] };
  private userCount: Record<SimProvider, number> = { 'sage-accounting': 0, 'sage-200': 0 };
  private nextCompanyId = 100;
  private mutationCount = 0;
  private grantCount = 0;

  constructor(private readonly options: SimulatorStateOptions = {}) {
    this.apps = resolveApps(options.apps);
    this.reset({});
  }

  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** Back to a freshly seeded simulator. Apps stay; settings, clock, counters, faults, users and grants start over. */
  reset(opts: { seed?: number; customersPerPartition?: number; usersPerProvider?: number }): void {
    const o = this.options;
    this.seed = opts.seed ?? o.seed ?? 1;
    this.customersPerPartition = opts.customersPerPartition ?? o.customersPerPartition ?? 25;
    this.settings = {
      sageAccounting: {
        accessTokenTtlSeconds: o.accessTokenTtlSeconds?.sageAccounting ?? 300,
        refreshTokenTtlSeconds: o.refreshTokenTtlSeconds?.sageAccounting ?? 2_678_400,
        codeTtlSeconds: 60,
        maxConcurrentRequests: 150,
        concurrencyRetryAfterSeconds: null,
      },
      sage200: {
        accessTokenTtlSeconds: o.accessTokenTtlSeconds?.sage200 ?? 28_800,
        refreshTokenTtlSeconds: o.refreshTokenTtlSeconds?.sage200 ?? 90 * 86_400,
        codeTtlSeconds: 60,
        maxConcurrentRequests: 0,
        concurrencyRetryAfterSeconds: null,
        requireSubscriptionKey: o.requireSubscriptionKey ?? true,
        revokeGrantOnRefreshReuse: true,
      },
    };
    this.clockOffsetMs = 0;
    this.counters.reset();
    this.faults = new FaultInjector(this.seed);
    this.users.clear();
    this.businesses.clear();
    this.sites.clear();
    this.lapsedBusinesses.clear();
    this.removedSites.clear();
    this.partitions.clear();
    this.grants.clear();
    this.codes.clear();
    this.tokens.clear();
    this.issuedTokens = [];
    this.issuedCodes = [];
    this.consentPlans = { 'sage-accounting': [], 'sage-200': [] };
    this.userCount = { 'sage-accounting': 0, 'sage-200': 0 };
    this.nextCompanyId = 100;
    this.mutationCount = 0;
    this.grantCount = 0;
    const usersPerProvider = opts.usersPerProvider ?? o.usersPerProvider ?? 2;
    for (let i = 0; i < usersPerProvider; i++) {
      this.createUser('sage-accounting');
      this.createUser('sage-200');
    }
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Users and partitions

  createUser(provider: SimProvider, opts: CreateUserOptions = {}): SimUser {
    const index = ++this.userCount[provider];
    const r = prng(hash32(this.seed, 'user', provider, index));
    const uuidHex = Array.from({ length: 4 }, () =>
      Math.floor(r() * 0x100000000)
        .toString(16)
        .padStart(8, '0'),
    ).join('');
    const uuid = `${uuidHex.slice(0, 8)}-${uuidHex.slice(8, 12)}-${uuidHex.slice(12, 16)}-${uuidHex.slice(16, 20)}-${uuidHex.slice(20, 32)}`;
    const id = provider === 'sage-accounting' ? `acc-user-${index}` : `s200-user-${index}`;
    const count =
      opts.partitions ??
      (provider === 'sage-accounting'
        ? (this.options.partitionsPerUser?.sageAccounting ?? 3)
        : (this.options.partitionsPerUser?.sage200 ?? 2));
    if (!Number.isInteger(count) || count < 1 || count > 50)
      throw new SimError(400, 'partitions must be an integer 1..50');
    const customers = opts.customersPerPartition ?? this.customersPerPartition;
    if (!Number.isInteger(customers) || customers < 0 || customers > 2_000_000)
      throw new SimError(400, 'customersPerPartition must be an integer 0..2000000');
    const country = (opts.country ?? 'GB').toUpperCase();
    const user: SimUser = {
      id,
      provider,
      index,
      uuid,
      email: `${id}@example.com`,
      country,
      edition: opts.edition ?? 'sage200extra',
      partitionIds: [],
    };
    for (let k = 0; k < count; k++) {
      let partitionId: string;
      if (provider === 'sage-accounting') {
        const b = makeBusiness(this.seed, index, k, country);
        this.businesses.set(b.id, b);
        partitionId = b.id;
      } else {
        const s = makeSite(this.seed, index, k, this.nextCompanyId++);
        partitionId = String(s.companyId);
        this.sites.set(partitionId, s);
      }
      user.partitionIds.push(partitionId);
      this.partitions.set(`${provider}:${partitionId}`, generatePartition(provider, partitionId, this.seed, customers));
    }
    this.users.set(id, user);
    return user;
  }

  user(id: string, provider?: SimProvider): SimUser {
    const u = this.users.get(id);
    if (!u || (provider && u.provider !== provider)) throw new SimError(404, `unknown ${provider ?? ''} user ${id}`);
    return u;
  }

  partition(provider: SimProvider, partitionId: string): PartitionData {
    const p = this.partitions.get(`${provider}:${partitionId}`);
    if (!p) throw new SimError(404, `unknown ${provider} partition ${partitionId}`);
    return p;
  }

  describeUser(u: SimUser) {
    return {
      id: u.id,
      provider: u.provider,
      uuid: u.uuid,
      email: u.email,
      ...(u.provider === 'sage-accounting'
        ? { country: u.country, leadBusinessId: u.partitionIds[0] }
        : { edition: u.edition }),
      partitions: u.partitionIds.map((pid) => this.describePartition(u.provider, pid)),
    };
  }

  describePartition(provider: SimProvider, pid: string) {
    const p = this.partition(provider, pid);
    let customers = 0;
    let deleted = 0;
    for (const r of p.records) {
      if (!isCustomer(r)) continue;
      if (r.deletedAt === null) customers++;
      else deleted++;
    }
    if (provider === 'sage-accounting') {
      const b = this.businesses.get(pid)!;
      return {
        partitionId: pid,
        businessId: b.id,
        name: b.name,
        customers,
        deletedCustomers: deleted,
        contacts: p.records.length,
      };
    }
    const s = this.sites.get(pid)!;
    return {
      partitionId: pid,
      companyId: s.companyId,
      siteId: s.siteId,
      name: s.companyName,
      customers,
      deletedCustomers: deleted,
    };
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Consent, codes, grants, tokens

  planConsent(provider: SimProvider, plan: ConsentPlan): void {
    if (plan.userId) this.user(plan.userId, provider);
    this.consentPlans[provider].push(plan);
  }

  /** The next consent's outcome: the planned user (or a fresh one), or a denial. */
  takeConsent(provider: SimProvider): { user?: SimUser; deny?: { error: string; description: string } } {
    const plan = this.consentPlans[provider].shift();
    if (plan?.deny)
      return {
        deny: { error: plan.deny, description: plan.denyDescription ?? 'The user denied access to your application.' },
      };
    return { user: plan?.userId ? this.user(plan.userId, provider) : this.createUser(provider) };
  }

  /** Peeks at who the next consent is for without consuming it (for the country check). */
  peekConsentUser(provider: SimProvider): SimUser | undefined {
    const plan = this.consentPlans[provider][0];
    return plan?.userId ? this.users.get(plan.userId) : undefined;
  }

  /** `regionPrefix` (Sage Accounting) prefixes the code like Sage's `GB/…` codes. */
  issueCode(c: Omit<AuthCode, 'code' | 'expiresAt' | 'usedAt'>, regionPrefix?: string): AuthCode {
    const random = randomBytes(24).toString('base64url');
    const code = regionPrefix ? `${regionPrefix}/${random}` : random;
    const rec: AuthCode = {
      ...c,
      code,
      expiresAt: this.now() + this.settings[settingsKey(c.provider)].codeTtlSeconds * 1000,
      usedAt: null,
    };
    this.codes.set(code, rec);
    this.issuedCodes.push(code);
    return rec;
  }

  createGrant(provider: SimProvider, userId: string, scope: string, audience: string | null, offline: boolean): Grant {
    const id = `grant-${++this.grantCount}`;
    const g: Grant = {
      id,
      provider,
      userId,
      scope,
      audience,
      offline,
      createdAt: this.now(),
      revokedAt: null,
      revokedReason: null,
      refreshCount: 0,
      currentRefresh: null,
      refreshExpiresAt: null,
      tokens: new Set(),
    };
    this.grants.set(id, g);
    return g;
  }

  private mintToken(kind: 'access' | 'refresh', g: Grant, ttlSeconds: number): string {
    const now = this.now();
    const header = base64url(JSON.stringify({ alg: 'RS512', typ: 'JWT', kid: base64url(randomBytes(24)) }));
    const payload = base64url(
      JSON.stringify({
        iss: g.provider === 'sage-accounting' ? 'https://oauth.accounting.sage.com' : 'https://id.sage.com/',
        sub: this.users.get(g.userId)?.uuid,
        aud: g.audience ?? undefined,
        jti: randomUUID(),
        typ: kind,
        iat: Math.floor(now / 1000),
        exp: Math.floor(now / 1000) + ttlSeconds,
        scope: g.scope,
        nonce: randomBytes(96).toString('base64url'),
      }),
    );
    // A 4096-bit RS512 signature is 512 bytes; random bytes stand in for it. Tokens end up ~1300 chars like Sage's.
    const token = `${header}.${payload}.${base64url(randomBytes(512))}`;
    this.tokens.set(token, { kind, grantId: g.id, expiresAt: now + ttlSeconds * 1000, issuedAt: now, killed: null });
    g.tokens.add(token);
    this.issuedTokens.push(token);
    return token;
  }

  /** Issues a new access token (and refresh token when the grant is offline), killing the previous refresh token. */
  issueTokens(g: Grant): {
    accessToken: string;
    accessExpiresIn: number;
    refreshToken: string | null;
    refreshExpiresIn: number | null;
  } {
    const s = this.settings[settingsKey(g.provider)];
    const accessToken = this.mintToken('access', g, s.accessTokenTtlSeconds);
    let refreshToken: string | null = null;
    if (g.offline) {
      if (g.currentRefresh) {
        const old = this.tokens.get(g.currentRefresh);
        if (old) old.killed = 'rotated';
      }
      refreshToken = this.mintToken('refresh', g, s.refreshTokenTtlSeconds);
      g.currentRefresh = refreshToken;
      // Sliding window: each refresh restarts the refresh token's lifetime (every response carries the full lifetime).
      g.refreshExpiresAt = this.now() + s.refreshTokenTtlSeconds * 1000;
    }
    return {
      accessToken,
      accessExpiresIn: s.accessTokenTtlSeconds,
      refreshToken,
      refreshExpiresIn: g.offline ? s.refreshTokenTtlSeconds : null,
    };
  }

  revokeGrant(g: Grant, reason: string): void {
    if (g.revokedAt !== null) return;
    g.revokedAt = this.now();
    g.revokedReason = reason;
    g.currentRefresh = null;
    for (const t of g.tokens) {
      const rec = this.tokens.get(t);
      if (rec && !rec.killed) rec.killed = 'revoked';
    }
  }

  /** The grant behind a live, unexpired access token, or why it is not usable. */
  checkAccessToken(
    token: string | undefined,
    provider: SimProvider,
  ): { grant: Grant; user: SimUser } | { problem: 'missing' | 'invalid' | 'expired' | 'revoked' } {
    if (!token) return { problem: 'missing' };
    const rec = this.tokens.get(token);
    if (!rec || rec.kind !== 'access') return { problem: 'invalid' };
    const g = this.grants.get(rec.grantId);
    if (!g || g.provider !== provider) return { problem: 'invalid' };
    if (rec.killed === 'revoked' || g.revokedAt !== null) return { problem: 'revoked' };
    if (this.now() >= rec.expiresAt) return { problem: 'expired' };
    return { grant: g, user: this.user(g.userId) };
  }

  grantSummary(g: Grant) {
    return {
      grantId: g.id,
      provider: g.provider,
      userId: g.userId,
      scope: g.scope,
      audience: g.audience,
      offline: g.offline,
      createdAt: new Date(g.createdAt).toISOString(),
      refreshCount: g.refreshCount,
      refreshExpiresAt: g.refreshExpiresAt === null ? null : new Date(g.refreshExpiresAt).toISOString(),
      revoked: g.revokedAt !== null,
      revokedReason: g.revokedReason,
    };
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Data mutation and ground truth

  private checkPartitionOwner(provider: SimProvider, partitionId: string, userId?: string): PartitionData {
    const p = this.partition(provider, partitionId);
    if (userId && !this.user(userId, provider).partitionIds.includes(partitionId))
      throw new SimError(400, `user ${userId} cannot reach partition ${partitionId}`);
    return p;
  }

  private pickLive(p: PartitionData, n: number, exclude: Set<string>): CustomerRecord[] {
    const live = p.records.filter((r) => isCustomer(r) && r.deletedAt === null && !exclude.has(r.id));
    if (n > live.length) throw new SimError(400, `only ${live.length} live customers left, cannot pick ${n}`);
    const rnd = prng(hash32(this.seed, 'mutate', ++this.mutationCount));
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(rnd() * (live.length - i));
      [live[i], live[j]] = [live[j]!, live[i]!];
    }
    return live.slice(0, n);
  }

  private resolveIds(p: PartitionData, ids: string[]): CustomerRecord[] {
    return ids.map((raw) => {
      const r = p.byId.get(String(raw));
      if (!r) throw new SimError(404, `unknown customer ${raw} in partition ${p.id}`);
      if (r.deletedAt !== null) throw new SimError(400, `customer ${raw} is already deleted`);
      return r;
    });
  }

  /** Updates, deletes and creates customers; every affected record gets `updated_at` = now (so they tie). */
  mutate(req: MutateRequest): MutateResult {
    const p = this.checkPartitionOwner(req.provider, req.partitionId, req.userId);
    const now = providerTime(p.provider, this.now());
    const toUpdate =
      typeof req.update === 'number' ? this.pickLive(p, req.update, new Set()) : this.resolveIds(p, req.update ?? []);
    const updatedIds = new Set(toUpdate.map((r) => r.id));
    const toDelete =
      typeof req.delete === 'number' ? this.pickLive(p, req.delete, updatedIds) : this.resolveIds(p, req.delete ?? []);
    for (const r of toUpdate) {
      r.version++;
      r.updatedAt = now;
    }
    for (const r of toDelete) {
      r.deletedAt = now;
      r.updatedAt = now;
    }
    const created: string[] = [];
    for (let i = 0; i < (req.create ?? 0); i++) created.push(createCustomer(p, now).id);
    p.version++;
    return {
      updated: toUpdate.map((r) => r.id),
      deleted: toDelete.map((r) => r.id),
      created,
      at: new Date(now).toISOString(),
    };
  }

  /** Every customer of a partition (vendors excluded), deleted ones flagged: what a perfect sync would hold. */
  truth(provider: SimProvider, partitionId: string, userId?: string): TruthCustomer[] {
    const p = this.checkPartitionOwner(provider, partitionId, userId);
    const out: TruthCustomer[] = [];
    for (const r of p.records) {
      if (!isCustomer(r)) continue;
      const d = customerDetails(p, r);
      out.push({
        id: r.id,
        reference: d.reference,
        name: d.name,
        email: d.email,
        currency: d.currency.code,
        balance: d.balance,
        address: {
          line1: d.address.line1,
          line2: d.address.line2 ?? null,
          city: d.address.city,
          postalCode: d.address.postalCode,
          country: d.address.country,
        },
        creditLimit: d.creditLimit,
        created_at: formatTime(provider, r.createdAt),
        updated_at: formatTime(provider, r.updatedAt),
        deleted: r.deletedAt !== null,
        deleted_at: r.deletedAt === null ? null : formatTime(provider, r.deletedAt),
      });
    }
    return out;
  }
}
