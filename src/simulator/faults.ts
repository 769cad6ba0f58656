/**
 * Fault injection: rules that make matching requests fail (HTTP status, optionally with Retry-After), slow down, lose
 * their connection, or wait (`hold`) until the rule is removed, by probability and/or a fixed count. Rules are scoped
 * by provider and endpoint kind. A held request is then handled normally: like a Sage that received a call, sat on it
 * and finally answered (a refresh then rotates the token even if the caller has given up).
 */
import { z } from 'zod';
import type { SimProvider } from './data.js';
import { prng } from './random.js';

export const ENDPOINT_SCOPES = ['api', 'token', 'revoke', 'authorize'] as const;
export type EndpointScope = (typeof ENDPOINT_SCOPES)[number];

export const FaultRuleInput = z
  .object({
    /** Which provider's endpoints; omitted = both. */
    provider: z.enum(['sage-accounting', 'sage-200']).optional(),
    /** Which endpoints: api (data), token, revoke, authorize; `any` or omitted = all simulated (non-admin) endpoints. */
    scope: z.enum([...ENDPOINT_SCOPES, 'any']).default('any'),
    /** Only requests whose path contains this string (e.g. `/contacts`). */
    pathIncludes: z.string().min(1).optional(),
    kind: z.enum(['status', 'latency', 'drop', 'hold']),
    /** For kind=status: 429, 500, 503, … */
    status: z.number().int().min(400).max(599).optional(),
    /** For status faults: a Retry-After header in seconds; omitted/null = no header. */
    retryAfterSeconds: z.number().int().min(0).nullable().optional(),
    /** For kind=latency: added delay before the request is handled normally. For kind=hold: the longest hold (default 120 s). */
    latencyMs: z.number().int().min(0).max(120_000).optional(),
    /** Chance each matching request is hit (default 1). */
    probability: z.number().min(0).max(1).default(1),
    /** How many requests to hit in total; omitted = until the rule is removed. */
    count: z.number().int().min(1).optional(),
    /** Let this many matching requests through first. */
    after: z.number().int().min(0).default(0),
  })
  .strict()
  .refine((r) => r.kind !== 'status' || r.status !== undefined, { message: 'status is required for kind=status' })
  .refine((r) => r.kind !== 'latency' || r.latencyMs !== undefined, {
    message: 'latencyMs is required for kind=latency',
  });
export type FaultRuleInput = z.input<typeof FaultRuleInput>;

export interface FaultRule extends z.output<typeof FaultRuleInput> {
  id: string;
  /** Requests this rule has hit so far. */
  hits: number;
  /** Matching requests seen (hit or not). */
  seen: number;
}

export type FaultAction =
  | { kind: 'status'; status: number; retryAfterSeconds: number | null; ruleId: string }
  | { kind: 'drop'; ruleId: string };

const MAX_HOLD_MS = 120_000;

export class FaultInjector {
  private rules: FaultRule[] = [];
  /** Releases for requests held by `hold` rules, by rule id. */
  private holds = new Map<string, Set<() => void>>();
  private nextId = 1;
  private readonly random: () => number;

  constructor(seed: number) {
    this.random = prng(seed ^ 0x5eed);
  }

  add(input: FaultRuleInput): FaultRule {
    const parsed = FaultRuleInput.parse(input);
    const rule: FaultRule = { ...parsed, id: `fault-${this.nextId++}`, hits: 0, seen: 0 };
    this.rules.push(rule);
    return rule;
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  remove(id?: string): void {
    const removed = this.rules.filter((r) => !id || r.id === id);
    this.rules = id ? this.rules.filter((r) => r.id !== id) : [];
    for (const r of removed) {
      for (const release of this.holds.get(r.id) ?? []) release();
      this.holds.delete(r.id);
    }
  }

  /** Resolves when the hold rule is removed (or after its longest hold). */
  private hold(rule: FaultRule): Promise<void> {
    return new Promise((resolve) => {
      const set = this.holds.get(rule.id) ?? new Set<() => void>();
      this.holds.set(rule.id, set);
      const release = () => {
        clearTimeout(timer);
        set.delete(release);
        resolve();
      };
      const timer = setTimeout(release, rule.latencyMs ?? MAX_HOLD_MS);
      set.add(release);
    });
  }

  /** Decides what happens to one request: total extra latency, then at most one status/drop action. */
  evaluate(
    provider: SimProvider,
    scope: EndpointScope,
    path: string,
  ): { latencyMs: number; action: FaultAction | null; held: Promise<void>[] } {
    let latencyMs = 0;
    const held: Promise<void>[] = [];
    let action: FaultAction | null = null;
    for (const r of this.rules) {
      if (r.provider && r.provider !== provider) continue;
      if (r.scope !== 'any' && r.scope !== scope) continue;
      if (r.pathIncludes && !path.includes(r.pathIncludes)) continue;
      if (r.count !== undefined && r.hits >= r.count) continue;
      if (r.kind !== 'latency' && r.kind !== 'hold' && action) continue;
      r.seen++;
      if (r.seen <= r.after) continue;
      if (r.probability < 1 && this.random() >= r.probability) continue;
      r.hits++;
      if (r.kind === 'latency') latencyMs += r.latencyMs ?? 0;
      else if (r.kind === 'hold') held.push(this.hold(r));
      else if (r.kind === 'drop') action = { kind: 'drop', ruleId: r.id };
      else action = { kind: 'status', status: r.status!, retryAfterSeconds: r.retryAfterSeconds ?? null, ruleId: r.id };
    }
    return { latencyMs, action, held };
  }
}
