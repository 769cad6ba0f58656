/**
 * What the simulator counts, so tests can assert on behaviour Sage would only show as a bill or an outage: how many
 * refreshes a grant saw, whether a client presented a refresh token that was already rotated away, how many requests
 * ran at once.
 */
import type { SimProvider } from './data.js';

const NAMES = [
  'consents',
  'consentDenials',
  'authorizeErrors',
  'codeExchanges',
  'refreshes',
  'reusedRefreshTokens',
  'invalidGrants',
  'invalidClients',
  'invalidRequests',
  'revokes',
  'apiRequests',
  'apiUnauthorized',
  'rateLimited',
  'faultsInjected',
  'droppedConnections',
] as const;
export type CounterName = (typeof NAMES)[number];

type Totals = Record<CounterName, number>;
const zero = (): Totals => Object.fromEntries(NAMES.map((n) => [n, 0])) as Totals;

export interface CountersSnapshot extends Totals {
  refreshesByGrant: Record<string, number>;
  requestsByPath: Record<string, number>;
  concurrentHighWater: number;
  inFlight: number;
  /** Customer list pages (`GET …/contacts`, `GET …/customers`) being answered right now, and the most at once. */
  customerPagesInFlight: number;
  customerPagesHighWater: number;
  /** The same high-water mark per partition (`X-Business`, or `X-Company`/`X-Site`; `?` when the call named none). */
  customerPagesHighWaterByPartition: Record<string, number>;
  byProvider: Record<SimProvider, Totals & { concurrentHighWater: number }>;
}

export class Counters {
  private totals = zero();
  private perProvider: Record<SimProvider, Totals> = { 'sage-accounting': zero(), 'sage-200': zero() };
  private refreshesByGrant: Record<string, number> = {};
  private requestsByPath: Record<string, number> = {};
  private inFlight = 0;
  private highWater = 0;
  private inFlightBy: Record<SimProvider, number> = { 'sage-accounting': 0, 'sage-200': 0 };
  private highWaterBy: Record<SimProvider, number> = { 'sage-accounting': 0, 'sage-200': 0 };

  private pagesInFlight = 0;
  private pagesHighWater = 0;
  private pagesInFlightBy = new Map<string, number>();
  private pagesHighWaterBy: Record<string, number> = {};

  /** Call when a customer list page request starts (after auth and faults: while Sage works on it); returns its end. */
  beginCustomerPage(partition: string): () => void {
    this.pagesInFlight++;
    this.pagesHighWater = Math.max(this.pagesHighWater, this.pagesInFlight);
    const n = (this.pagesInFlightBy.get(partition) ?? 0) + 1;
    this.pagesInFlightBy.set(partition, n);
    this.pagesHighWaterBy[partition] = Math.max(this.pagesHighWaterBy[partition] ?? 0, n);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.pagesInFlight--;
      const left = (this.pagesInFlightBy.get(partition) ?? 1) - 1;
      if (left > 0) this.pagesInFlightBy.set(partition, left);
      else this.pagesInFlightBy.delete(partition);
    };
  }

  inc(name: CounterName, provider?: SimProvider, by = 1): void {
    this.totals[name] += by;
    if (provider) this.perProvider[provider][name] += by;
  }

  refreshed(provider: SimProvider, grantId: string): void {
    this.inc('refreshes', provider);
    this.refreshesByGrant[grantId] = (this.refreshesByGrant[grantId] ?? 0) + 1;
  }

  request(path: string): void {
    this.requestsByPath[path] = (this.requestsByPath[path] ?? 0) + 1;
  }

  /** Call when a request starts; the returned function ends it (idempotent). */
  begin(provider: SimProvider | undefined): () => void {
    this.inFlight++;
    this.highWater = Math.max(this.highWater, this.inFlight);
    if (provider) {
      this.inFlightBy[provider]++;
      this.highWaterBy[provider] = Math.max(this.highWaterBy[provider], this.inFlightBy[provider]);
    }
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.inFlight--;
      if (provider) this.inFlightBy[provider]--;
    };
  }

  inFlightFor(provider: SimProvider): number {
    return this.inFlightBy[provider];
  }

  snapshot(): CountersSnapshot {
    return {
      ...this.totals,
      refreshesByGrant: { ...this.refreshesByGrant },
      requestsByPath: { ...this.requestsByPath },
      concurrentHighWater: this.highWater,
      inFlight: this.inFlight,
      customerPagesInFlight: this.pagesInFlight,
      customerPagesHighWater: this.pagesHighWater,
      customerPagesHighWaterByPartition: { ...this.pagesHighWaterBy },
      byProvider: {
        'sage-accounting': {
          ...this.perProvider['sage-accounting'],
          concurrentHighWater: this.highWaterBy['sage-accounting'],
        },
        'sage-200': { ...this.perProvider['sage-200'], concurrentHighWater: this.highWaterBy['sage-200'] },
      },
    };
  }

  /** Zeroes everything except requests still in flight (they will end and decrement). */
  reset(): void {
    this.totals = zero();
    this.perProvider = { 'sage-accounting': zero(), 'sage-200': zero() };
    this.refreshesByGrant = {};
    this.requestsByPath = {};
    this.highWater = this.inFlight;
    this.pagesHighWater = this.pagesInFlight;
    this.pagesHighWaterBy = Object.fromEntries(this.pagesInFlightBy);
    this.highWaterBy = { ...this.inFlightBy };
  }
}
