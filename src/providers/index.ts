/** The customer source and page size of each Sage product: lookups in the one provider registry (`registry.ts`). */
import type { Config } from '../config.js';
import type { Provider } from '../messages.js';
import type { SageHttp } from './http.js';
import { providerFor } from './registry.js';
import type { CustomerSource } from './types.js';

export type { CustomerSource } from './types.js';
export { providerFor } from './registry.js';

export function customerSourceFor(provider: Provider, http: SageHttp, config: Config): CustomerSource {
  return providerFor(provider).customerSource(http, config);
}

export function pageSizeFor(
  provider: Provider,
  config: Pick<Config, 'SAGE200_PAGE_SIZE' | 'SAGE_ACCOUNTING_PAGE_SIZE'>,
): number {
  return providerFor(provider).pageSize(config);
}
