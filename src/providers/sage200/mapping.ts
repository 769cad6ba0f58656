/**
 * Sage 200 (UK, accounts/v1) customer → normalized customer (contract §4). Field names follow Sage's customer sample
 * (`fixtures/sage200-customer.json`). Sage 200 has no top-level e-mail: it lives on the contacts; the phone is split into
 * country/area/subscriber parts.
 */
import { z } from 'zod';
import type { MapResult } from '../types.js';
import { decimal, externalId, looseId, rejectNul, sage200Timestamp, text, zodReason } from '../schema-helpers.js';

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
    default_email: text(320),
    email: text(320),
    emails: z.array(z.object({ email: text(320), is_default: z.boolean().nullish() }).passthrough()).nullish(),
    default_telephone: text(64),
    is_default: z.boolean().nullish(),
  })
  .passthrough();

/**
 * The expanded `currency`. No public Sage sample shows one; the field list mirrored by integrators (CData, Zynk) is
 * `id, symbol, name, core_currency_rate, euro_currency_rate, currency_iso_code_id, is_base_currency, …`, i.e. the ISO
 * code sits behind `currency_iso_code_id` on a separate `currency_iso_codes` entity. So we read an ISO code only where one
 * is actually present (a nested `currency_iso_code.code`, or a string `currency_iso_code` / `iso_code` / `code`) and
 * otherwise store null rather than guess from the symbol or the name (README: open question).
 */
const isoCodeHolder = z.object({ code: text(8) }).passthrough();
const currency = z
  .object({
    currency_iso_code: z.union([isoCodeHolder, z.string()]).nullish().catch(null),
    iso_code: text(8).catch(null),
    code: text(8).catch(null),
    symbol: text(8).catch(null),
    name: text(64).catch(null),
  })
  .passthrough();

function isoCurrency(c: z.infer<typeof currency> | null | undefined): string | null {
  if (!c) return null;
  const nested = c.currency_iso_code;
  const candidates = [typeof nested === 'string' ? nested : nested?.code, c.iso_code, c.code];
  return candidates.find((v): v is string => typeof v === 'string' && /^[A-Z]{3}$/.test(v.trim()))?.trim() ?? null;
}
const countryCode = z.object({ code: text(8) }).passthrough();

/** Nested objects Sage 200 includes only when asked with `$expand` (e-mails live only under `contacts`). */
export const SAGE200_EXPAND = ['main_address', 'contacts', 'currency', 'country_code'] as const;

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
    country_code: countryCode.nullish(),
    main_address: address.nullish(),
    contacts: z.array(contact).nullish(),
    date_time_updated: sage200Timestamp,
  })
  .passthrough();
export type Sage200Customer = z.infer<typeof Sage200Customer>;

function defaultFirst<T extends { is_default?: boolean | null }>(items: T[] | null | undefined): T[] {
  const all = items ?? [];
  return [...all.filter((x) => x.is_default), ...all.filter((x) => !x.is_default)];
}

/** The account's own number (area + subscriber, as printed in the UK), else the default contact's. */
function phone(c: Sage200Customer): string | null {
  const parts = [c.telephone_area_code, c.telephone_subscriber_number].filter((p): p is string => !!p);
  if (parts.length) return parts.join(' ');
  return defaultFirst(c.contacts).find((x) => x.default_telephone)?.default_telephone ?? null;
}

function email(c: Sage200Customer): string | null {
  for (const x of defaultFirst(c.contacts)) {
    const e = x.default_email ?? x.email ?? defaultFirst(x.emails).find((m) => m.email)?.email;
    if (e) return e;
  }
  return null;
}

export function mapSage200Customer(raw: unknown): MapResult {
  const nul = rejectNul(raw);
  if (nul) return nul;
  const parsed = Sage200Customer.safeParse(raw);
  if (!parsed.success) return { ok: false, externalId: looseId(raw), reason: zodReason(parsed.error) };
  const c = parsed.data;
  const a = c.main_address;
  return {
    ok: true,
    customer: {
      externalId: c.id,
      reference: c.reference,
      name: c.name ?? c.short_name,
      email: email(c),
      phone: phone(c),
      currency: isoCurrency(c.currency),
      balance: c.balance,
      creditLimit: c.credit_limit,
      address: {
        line1: a?.address_1 ?? null,
        line2: a?.address_2 ?? null,
        city: a?.city ?? null,
        postalCode: a?.postcode ?? null,
        // ISO code when the expanded `country_code` gives it; else whatever the address says (a country name).
        country: c.country_code?.code ?? a?.country_code ?? a?.country ?? null,
      },
      // Sage 200 marks closed accounts by status, not by deletion; "on hold" accounts are still customers.
      active: !c.account_status_type || c.account_status_type === 'AccountStatusActive',
      sourceUpdatedAt: c.date_time_updated,
    },
  };
}
