/**
 * The one provider registry: everything that differs between the Sage products, per provider, behind the interfaces
 * of `types.ts` and `oauth.ts`. Each product stays in its own folder (`sage-accounting/`, `sage200/`); every dispatcher
 * (OAuth, the connection test, the customer sync, PKCE) asks `providerFor(provider)` instead of testing the name.
 */
import type { Config } from '../config.js';
import type { Partition, Provider } from '../messages.js';
import type { SageHttp } from './http.js';
import type { ProviderOAuth } from './oauth.js';
import { sageAccountingOAuth } from './sage-accounting/oauth.js';
import { createSageAccountingSource, SAGE_ACCOUNTING_MAX_PAGE } from './sage-accounting/customers.js';
import { listSageAccountingBusinesses, sageAccountingUserId } from './sage-accounting/partitions.js';
import { sage200OAuth } from './sage200/oauth.js';
import { createSage200Source } from './sage200/customers.js';
import { SAGE200_DEFAULT_EDITION, type Sage200Edition } from './sage200/editions.js';
import { listSage200Sites } from './sage200/partitions.js';
import type { CustomerSource } from './types.js';

/** What a consent reaches: its partitions and, where the product has them, the lead business and the Sage user. */
export interface PartitionListing {
  partitions: Partition[];
  leadBusinessId: string | null;
  /** Sage Accounting: the Sage user the grant belongs to (null when it cannot be read); absent for Sage 200. */
  sageUserId?: string | null;
}

export interface ProviderModule {
  readonly provider: Provider;
  /** Consent URL, code exchange, refresh, revoke (with the product's headers and client credentials). */
  readonly oauth: ProviderOAuth;
  /** The connection test: businesses (Sage Accounting) or sites (Sage 200) the access token reaches. */
  listPartitions(
    http: SageHttp,
    config: Config,
    accessToken: string,
    opts: { edition?: string; warn?: (err: unknown, msg: string) => void },
  ): Promise<PartitionListing>;
  /** The customer source of the sync engine. */
  customerSource(http: SageHttp, config: Config): CustomerSource;
  /** Customers per page: Sage Accounting's maximum is 200; Sage 200 takes `$top` up to 5000 (we default lower). */
  pageSize(config: Pick<Config, 'SAGE200_PAGE_SIZE' | 'SAGE_ACCOUNTING_PAGE_SIZE'>): number;
  /** Whether consents use PKCE (SAGE_ACCOUNTING_PKCE / SAGE200_PKCE). */
  pkce(config: Pick<Config, 'SAGE_ACCOUNTING_PKCE' | 'SAGE200_PKCE'>): boolean;
  /** Sage 200: the edition a connection without one uses. */
  readonly defaultEdition?: Sage200Edition;
}

function build(): Record<Provider, ProviderModule> {
  return {
    'sage-accounting': {
      provider: 'sage-accounting',
      oauth: sageAccountingOAuth,
      async listPartitions(http, config, accessToken, opts) {
        const r = await listSageAccountingBusinesses(http, config, accessToken);
        return {
          partitions: r.businesses,
          leadBusinessId: r.leadBusinessId,
          sageUserId: await sageAccountingUserId(http, config, accessToken).catch((err: unknown) => {
            opts.warn?.(err, 'could not read the Sage user of a grant');
            return null;
          }),
        };
      },
      customerSource: (http, config) => createSageAccountingSource(http, config),
      pageSize: (config) => Math.min(SAGE_ACCOUNTING_MAX_PAGE, config.SAGE_ACCOUNTING_PAGE_SIZE),
      pkce: (config) => config.SAGE_ACCOUNTING_PKCE === 'S256',
    },
    'sage-200': {
      provider: 'sage-200',
      oauth: sage200OAuth,
      async listPartitions(http, config, accessToken, opts) {
        return { partitions: await listSage200Sites(http, config, accessToken, opts.edition), leadBusinessId: null };
      },
      customerSource: (http, config) => createSage200Source(http, config),
      pageSize: (config) => config.SAGE200_PAGE_SIZE,
      pkce: (config) => config.SAGE200_PKCE === 'S256',
      defaultEdition: SAGE200_DEFAULT_EDITION,
    },
  };
}

// Built on first use: the provider modules import `oauth.ts`, which looks providers up here (no load-order cycle).
let registry: Record<Provider, ProviderModule> | undefined;

export function providerFor(provider: Provider): ProviderModule {
  registry ??= build();
  return registry[provider];
}
