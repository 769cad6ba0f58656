/** Provider registry: the customer source for each Sage product, built over the shared (capped, retrying) HTTP client. */
import type { Config } from '../config.js';
import type { Provider } from '../messages.js';
import type { SageHttp } from './http.js';
import type { CustomerSource } from './types.js';
import { createSageAccountingSource, SAGE_ACCOUNTING_MAX_PAGE } from './sage-accounting/customers.js';
import { createSage200Source } from './sage200/customers.js';

export type { CustomerSource } from './types.js';

export function customerSourceFor(provider: Provider, http: SageHttp, config: Config): CustomerSource {
  switch (provider) {
    case 'sage-accounting':
      return createSageAccountingSource(http, config);
    case 'sage-200':
      return createSage200Source(http, config);
  }
}

/** Page size per provider: Sage Accounting's maximum is 200; Sage 200 takes `$top` up to 5000 (we default lower). */
export function pageSizeFor(
  provider: Provider,
  config: Pick<Config, 'SAGE200_PAGE_SIZE' | 'SAGE_ACCOUNTING_PAGE_SIZE'>,
): number {
  return provider === 'sage-accounting'
    ? Math.min(SAGE_ACCOUNTING_MAX_PAGE, config.SAGE_ACCOUNTING_PAGE_SIZE)
    : config.SAGE200_PAGE_SIZE;
}
