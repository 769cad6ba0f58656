/**
 * How a Sage Accounting v3.1 contact looks on the wire. Decimals (`balance`, `credit_limit`) are strings in Ruby
 * BigDecimal style (`"2000.0"`, `"123.45"`, `"-56.1"`), timestamps whole-second UTC (`2024-03-01T10:21:33Z`).
 */
import { COUNTRIES, customerDetails, type CustomerRecord, type PartitionData } from '../data.js';
import { hash32 } from '../random.js';
import { accountingTime } from '../state.js';

/** Ruby BigDecimal#to_s as Rails renders it in JSON: at least one decimal digit, no trailing zeros beyond it. */
export function rubyDecimal(n: number): string {
  const fixed = n.toFixed(2).replace(/0$/, '');
  return fixed === '-0.0' ? '0.0' : fixed;
}

function subId(id: string, tag: string): string {
  return [0, 1, 2, 3].map((i) => hash32(id, tag, i).toString(16).padStart(8, '0')).join('');
}

const link = (kind: string, id: string, name: string) => ({ id, displayed_as: name, $path: `/${kind}/${id}` });

export function displayedAs(name: string, reference: string | null): string {
  return reference ? `${name} (${reference})` : name;
}

const TYPE = {
  CUSTOMER: link('contact_types', 'CUSTOMER', 'Customer'),
  VENDOR: link('contact_types', 'VENDOR', 'Supplier'),
};

export function contactTypes(rec: CustomerRecord) {
  if (rec.kind === 'customer') return [TYPE.CUSTOMER];
  if (rec.kind === 'vendor') return [TYPE.VENDOR];
  return [TYPE.CUSTOMER, TYPE.VENDOR];
}

/** The base fields every list item has. */
export function contactBase(p: PartitionData, rec: CustomerRecord) {
  const d = customerDetails(p, rec);
  return { id: rec.id, displayed_as: displayedAs(d.name, d.reference), $path: `/contacts/${rec.id}` };
}

/** Every attribute (`attributes=all`). */
export function contactFull(p: PartitionData, rec: CustomerRecord): Record<string, unknown> {
  const d = customerDetails(p, rec);
  const created = accountingTime(rec.createdAt);
  const updated = accountingTime(rec.updatedAt);
  const country = COUNTRIES[d.address.country] ?? { name: d.address.country };
  const phone = d.phone ? `${d.phone.area} ${d.phone.number}` : null;
  const addressId = subId(rec.id, 'address');
  const personId = subId(rec.id, 'person');
  const customerSide = rec.kind !== 'vendor';
  return {
    id: rec.id,
    displayed_as: displayedAs(d.name, d.reference),
    $path: `/contacts/${rec.id}`,
    created_at: created,
    updated_at: updated,
    deleted_at: rec.deletedAt === null ? null : accountingTime(rec.deletedAt),
    links: [
      {
        href: `https://accounting.sageone.co.uk/contacts/${customerSide ? 'customers' : 'vendors'}/${rec.id}`,
        rel: 'alternate',
        type: 'text/html',
      },
    ],
    contact_types: contactTypes(rec),
    name: d.name,
    reference: d.reference,
    email: d.email,
    tax_number: d.vatNumber,
    notes: null,
    locale: 'en',
    main_address: {
      id: addressId,
      displayed_as: [d.address.line1, d.address.line2, d.address.city, d.address.region, d.address.postalCode]
        .filter(Boolean)
        .join('\n'),
      $path: `/addresses/${addressId}`,
      address_line_1: d.address.line1,
      address_line_2: d.address.line2,
      city: d.address.city,
      postal_code: d.address.postalCode,
      region: d.address.region,
      country: link('countries', d.address.country, `${country.name} (${d.address.country})`),
      country_group: d.address.country === 'GB' ? link('country_groups', 'GBIE', 'UK & Ireland') : null,
      address_type: link(
        'address_types',
        customerSide ? 'ACCOUNTS' : 'DELIVERY',
        customerSide ? 'Accounts' : 'Delivery',
      ),
      name: 'Main Address',
      is_main_address: true,
      created_at: created,
      updated_at: updated,
      deleted_at: null,
    },
    delivery_address: null,
    main_contact_person: {
      id: personId,
      displayed_as: d.contactName,
      $path: `/contact_persons/${personId}`,
      name: d.contactName,
      job_title: null,
      telephone: phone,
      mobile: null,
      email: d.email,
      fax: null,
      is_main_contact: true,
      is_preferred_contact: true,
      contact_person_types: [link('contact_person_types', 'ACCOUNTS', 'Accounts')],
      created_at: created,
      updated_at: updated,
      deleted_at: null,
    },
    bank_account_details: null,
    credit_limit: rubyDecimal(d.creditLimit),
    credit_days: d.creditDays,
    credit_terms_and_conditions: null,
    currency: link('currencies', d.currency.code, `${d.currency.name} (${d.currency.code})`),
    balance: rubyDecimal(d.balance),
    aux_reference: null,
    registered_number: null,
    source_guid: null,
    is_active: d.active,
    system: false,
    deletable: true,
    gdpr_obfuscated: false,
    has_unfinished_recurring_invoices: false,
    destination_vat_blocking: false,
    gb_based: d.address.country === 'GB',
    ni_based: false,
  };
}
