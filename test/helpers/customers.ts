/**
 * Customer documents built for writer tests as the sync builds them (`buildCustomerDoc` with the content hash of the
 * raw record): customer `id` of partition `key` whose balance (and raw record) carries version `v`.
 */
import { buildCustomerDoc, type CustomerDoc, type PartitionKey } from '../../src/sync/documents.js';
import { contentHash } from '../../src/sync/hash.js';

export function testCustomerDoc(
  key: PartitionKey,
  id: number,
  v: number,
  raw: Record<string, unknown> = { id, v },
): CustomerDoc {
  return buildCustomerDoc(
    key,
    {
      externalId: String(id),
      reference: null,
      name: `c${id}`,
      email: null,
      phone: null,
      currency: null,
      balance: v,
      creditLimit: null,
      address: { line1: null, line2: null, city: null, postalCode: null, country: null },
      active: true,
      sourceUpdatedAt: new Date('2024-01-01T00:00:00Z'),
    },
    raw,
    contentHash(raw),
    new Date(),
  );
}
