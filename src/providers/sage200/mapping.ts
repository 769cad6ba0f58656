/**
 * Sage 200 (UK, accounts/v1) customer → normalized customer (contract §4). Field names follow Sage's customer sample
 * (`fixtures/sage200-customer.json`). Sage 200 has no top-level e-mail: it lives on the contacts; the phone is split into
 * country/area/subscriber parts.
 */
import { z } from 'zod';
import type { MapResult } from '../types.js';
import { decimal, externalId, looseId, text, timestamp, zodReason } from '../schema-helpers.js';

const address = z
  .object({
    address_1: text(),
    address_2: text(),
    city: text(),
    postcode: text(),
    country: text(),
    country_code: text(),
  })
  .passthrough();

const contact = z
  .object({
    email: text(320),
    emails: z.array(z.object({ email: text(320) }).passthrough()).nullish(),
    is_default: z.boolean().nullish(),
  })
  .passthrough();

const currency = z.object({ code: text(8), iso_code: text(8), symbol: text(8) }).passthrough();

export const Sage200Customer = z
  .object({
    id: externalId,
    reference: text(64),
    name: text(),
    short_name: text(),
    balance: decimal,
    credit_limit: decimal,
    on_hold: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).nullish(),
    account_status_type: text(64),
    telephone_country_code: text(16),
    telephone_area_code: text(16),
    telephone_subscriber_number: text(64),
    currency: currency.nullish(),
    main_address: address.nullish(),
    contacts: z.array(contact).nullish(),
    date_time_updated: timestamp,
  })
  .passthrough();
export type Sage200Customer = z.infer<typeof Sage200Customer>;

function phone(c: Sage200Customer): string | null {
  const parts = [c.telephone_country_code, c.telephone_area_code, c.telephone_subscriber_number].filter((p): p is string => !!p);
  return parts.length ? parts.join(' ') : null;
}

function email(c: Sage200Customer): string | null {
  const contacts = c.contacts ?? [];
  const ordered = [...contacts.filter((x) => x.is_default), ...contacts.filter((x) => !x.is_default)];
  for (const x of ordered) {
    const e = x.email ?? x.emails?.find((m) => m.email)?.email;
    if (e) return e;
  }
  return null;
}

export function mapSage200Customer(raw: unknown): MapResult {
  const parsed = Sage200Customer.safeParse(raw);
  if (!parsed.success) return { ok: false, externalId: looseId(raw), reason: zodReason(parsed.error) };
  const c = parsed.data;
  const a = c.main_address;
  const code = c.currency?.code ?? c.currency?.iso_code ?? null;
  return {
    ok: true,
    customer: {
      externalId: c.id,
      reference: c.reference,
      name: c.name ?? c.short_name,
      email: email(c),
      phone: phone(c),
      currency: code && /^[A-Z]{3}$/.test(code) ? code : null,
      balance: c.balance,
      creditLimit: c.credit_limit,
      address: {
        line1: a?.address_1 ?? null,
        line2: a?.address_2 ?? null,
        city: a?.city ?? null,
        postalCode: a?.postcode ?? null,
        country: a?.country_code ?? a?.country ?? null,
      },
      // Sage 200 marks closed accounts by status, not by deletion; "on hold" accounts are still customers.
      active: !c.account_status_type || c.account_status_type === 'AccountStatusActive',
      sourceUpdatedAt: c.date_time_updated,
    },
  };
}
