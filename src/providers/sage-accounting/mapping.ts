/**
 * Sage Accounting v3.1 contact → normalized customer (contract §4). Field names follow the v3.1 `Contact` definition.
 * Only the fields named in `CONTACT_ATTRIBUTES` are requested: without `attributes` the list carries only
 * `id`/`displayed_as`/`$path` (Sage quirk), and Sage advises naming fields rather than `attributes=all`.
 */
import { z } from 'zod';
import type { MapResult } from '../types.js';
import { decimal, externalId, looseId, rejectNul, text, timestamp, zodReason } from '../schema-helpers.js';

/**
 * The `attributes` list sent with every contacts request (names of `Contact` properties in Sage's Swagger). `balance` is
 * not among them: Sage shows it only with `show_balance=true` (Swagger, `/contacts` GET), which we always send.
 */
export const CONTACT_ATTRIBUTES = [
  'name',
  'reference',
  'email',
  'credit_limit',
  'currency',
  'main_address',
  'main_contact_person',
  'is_active',
  'contact_types',
  'created_at',
  'updated_at',
  'deleted_at',
] as const;

/**
 * `nested_attributes`: what the mapping reads from nested entities. Without it Sage gives nested objects (`main_address`,
 * `main_contact_person`, `currency`, …) only their base attributes (`id`, `displayed_as`, `$path`), so the address, the
 * contact person's e-mail and phone would all be null. Names of `Address` / `ContactPerson` properties in the Swagger.
 */
export const CONTACT_NESTED_ATTRIBUTES = [
  'address_line_1',
  'address_line_2',
  'city',
  'postal_code',
  'country',
  'email',
  'telephone',
  'mobile',
] as const;

/** The query parameters every contacts read carries (list pages and single GETs alike). */
export function contactQuery(): Record<string, string> {
  return {
    attributes: CONTACT_ATTRIBUTES.join(','),
    nested_attributes: CONTACT_NESTED_ATTRIBUTES.join(','),
    show_balance: 'true',
  };
}

const link = z.object({ id: z.string().nullish(), displayed_as: z.string().nullish() }).passthrough();

const address = z
  .object({
    address_line_1: text(),
    address_line_2: text(),
    city: text(),
    postal_code: text(),
    country: z.union([link, z.string()]).nullish(),
  })
  .passthrough();

const contactPerson = z.object({ email: text(320), telephone: text(64), mobile: text(64) }).passthrough();

export const SageContact = z
  .object({
    id: externalId,
    displayed_as: text(),
    name: text(),
    reference: text(64),
    email: text(320),
    balance: decimal,
    credit_limit: decimal,
    currency: link.nullish(),
    main_address: address.nullish(),
    main_contact_person: contactPerson.nullish(),
    is_active: z.boolean().nullish(),
    contact_types: z.array(link).nullish(),
    updated_at: timestamp,
  })
  .passthrough();
export type SageContact = z.infer<typeof SageContact>;

function countryCode(country: z.infer<typeof address>['country']): string | null {
  if (!country) return null;
  if (typeof country === 'string') return country || null;
  return country.id ?? country.displayed_as ?? null;
}

export function mapSageAccountingContact(raw: unknown): MapResult {
  const nul = rejectNul(raw);
  if (nul) return nul;
  const parsed = SageContact.safeParse(raw);
  if (!parsed.success) return { ok: false, externalId: looseId(raw), reason: zodReason(parsed.error) };
  const c = parsed.data;
  // We ask for contact_type_id=CUSTOMER; anything that still says it is not a customer is dropped, not stored.
  if (c.contact_types && c.contact_types.length > 0 && !c.contact_types.some((t) => t.id === 'CUSTOMER')) {
    return { ok: false, skip: true, externalId: c.id, reason: 'not a customer contact' };
  }
  const a = c.main_address;
  const person = c.main_contact_person;
  return {
    ok: true,
    customer: {
      externalId: c.id,
      reference: c.reference,
      name: c.name ?? c.displayed_as,
      email: c.email ?? person?.email ?? null,
      phone: person?.telephone ?? person?.mobile ?? null,
      currency: c.currency?.id ?? null,
      balance: c.balance,
      creditLimit: c.credit_limit,
      address: {
        line1: a?.address_line_1 ?? null,
        line2: a?.address_line_2 ?? null,
        city: a?.city ?? null,
        postalCode: a?.postal_code ?? null,
        country: a ? countryCode(a.country) : null,
      },
      active: c.is_active !== false,
      sourceUpdatedAt: c.updated_at,
    },
  };
}
