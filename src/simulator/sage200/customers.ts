/**
 * How a Sage 200 customer looks on the wire (fields after the Sage reference sample; numbers as JSON numbers,
 * empty strings rather than nulls, timestamps without a zone `2016-07-08T15:28:48.66` as in Sage's sample). E-mail addresses live only under
 * `contacts[]`, which (like `main_address`, `currency`, `country_code`) appears only with `$expand`.
 */
import { COUNTRIES, customerDetails, type CustomerDetails, type CustomerRecord, type PartitionData } from '../data.js';
import { hash32 } from '../random.js';
import { sage200Time } from '../state.js';
import type { FieldType } from './odata.js';

/** Filterable / sortable / selectable scalar fields and their types. */
export const CUSTOMER_FIELDS: Record<string, FieldType> = {
  id: 'number',
  reference: 'string',
  name: 'string',
  short_name: 'string',
  balance: 'number',
  on_hold: 'boolean',
  account_status_type: 'string',
  currency_id: 'number',
  credit_limit: 'number',
  country_code_id: 'number',
  vat_number: 'string',
  website: 'string',
  date_time_created: 'datetime',
  date_time_updated: 'datetime',
};

export const EXPANDABLE = ['main_address', 'contacts', 'currency', 'country_code'] as const;

/** A lazy row for $filter / $orderby: cheap fields come from the record, the rest from details on first use. */
export class CustomerRow {
  private d?: CustomerDetails;
  constructor(
    private readonly p: PartitionData,
    readonly rec: CustomerRecord,
  ) {}
  private get details(): CustomerDetails {
    return (this.d ??= customerDetails(this.p, this.rec));
  }
  get id() {
    return Number(this.rec.id);
  }
  get date_time_created() {
    return this.rec.createdAt;
  }
  get date_time_updated() {
    return this.rec.updatedAt;
  }
  get reference() {
    return this.details.reference;
  }
  get name() {
    return this.details.name;
  }
  get short_name() {
    return shortName(this.details.name);
  }
  get balance() {
    return this.details.balance;
  }
  get on_hold() {
    return this.details.onHold;
  }
  get account_status_type() {
    return this.details.active ? 'AccountStatusActive' : 'AccountStatusInactive';
  }
  get currency_id() {
    return this.details.currency.sage200Id;
  }
  get credit_limit() {
    return this.details.creditLimit;
  }
  get country_code_id() {
    return COUNTRIES[this.details.address.country]?.sage200Id ?? 0;
  }
  get vat_number() {
    return this.details.vatNumber ?? '';
  }
  get website() {
    return this.details.website ?? '';
  }
}

const shortName = (name: string) => name.slice(0, 8);

export function customerJson(
  p: PartitionData,
  rec: CustomerRecord,
  expand: readonly string[],
): Record<string, unknown> {
  const d = customerDetails(p, rec);
  const id = Number(rec.id);
  const country = COUNTRIES[d.address.country];
  const out: Record<string, unknown> = {
    id,
    reference: d.reference,
    name: d.name,
    short_name: shortName(d.name),
    balance: d.balance,
    on_hold: d.onHold,
    status_reason: '',
    account_status_type: d.active ? 'AccountStatusActive' : 'AccountStatusInactive',
    currency_id: d.currency.sage200Id,
    exchange_rate_type: 'ExchangeRateSingle',
    telephone_country_code: d.phone?.country ?? '',
    telephone_area_code: d.phone?.area ?? '',
    telephone_subscriber_number: d.phone?.number ?? '',
    fax_country_code: '',
    fax_area_code: '',
    fax_subscriber_number: '',
    website: d.website ?? '',
    credit_limit: d.creditLimit,
    country_code_id: country?.sage200Id ?? 0,
    default_tax_code_id: 1729,
    vat_number: d.vatNumber ?? '',
    duns_code: '',
    account_type: 'TradingAccountTypeOpenItem',
    early_settlement_discount_percent: 0,
    early_settlement_discount_days: 0,
    payment_terms_days: d.creditDays,
    payment_terms_basis: 'PaymentDueDays',
    average_time_to_pay: (hash32(p.seed, rec.seq, 'attp') % 90) + 1,
    terms_agreed: true,
    value_of_current_orders_in_sop: 0,
    analysis_code_1: 'Trade',
    analysis_code_2: '',
    analysis_code_3: d.address.region ?? '',
    analysis_code_4: '',
    analysis_code_5: '',
    date_time_created: sage200Time(rec.createdAt),
    date_time_updated: sage200Time(rec.updatedAt),
  };
  if (expand.includes('main_address')) {
    out.main_address = {
      id: id * 10 + 1,
      address_1: d.address.line1,
      address_2: d.address.line2 ?? '',
      address_3: '',
      address_4: '',
      city: d.address.city,
      county: d.address.region ?? '',
      postcode: d.address.postalCode,
      country: country?.name ?? d.address.country,
      country_code_id: country?.sage200Id ?? 0,
    };
  }
  if (expand.includes('contacts')) {
    const [first, ...rest] = d.contactName.split(' ');
    out.contacts = [
      {
        id: id * 10 + 2,
        name: d.contactName,
        first_name: first ?? '',
        last_name: rest.join(' '),
        is_default: true,
        default_email: d.email ?? '',
        default_telephone: d.phone ? `${d.phone.area} ${d.phone.number}` : '',
        emails: d.email ? [{ id: id * 10 + 3, email: d.email, is_default: true }] : [],
      },
    ];
  }
  if (expand.includes('currency')) {
    // The currency entity's fields as integrators mirror Sage's reference (CData "Currencies", Zynk "Currency XML"): the
    // ISO code is not among them, only `currency_iso_code_id` pointing at a separate `currency_iso_codes` entity.
    out.currency = {
      id: d.currency.sage200Id,
      symbol: { GBP: '£', EUR: '€', USD: '$' }[d.currency.code] ?? '',
      name: d.currency.name,
      core_currency_rate: d.currency.code === 'GBP' ? 1 : 1.17,
      euro_currency_rate: d.currency.code === 'EUR' ? 1 : 0.86,
      currency_iso_code_id: { GBP: 49, EUR: 46, USD: 150 }[d.currency.code] ?? 0,
      is_base_currency: d.currency.code === 'GBP',
      is_euro_currency: d.currency.code === 'EUR',
      date_time_updated: sage200Time(rec.createdAt),
    };
  }
  if (expand.includes('country_code'))
    out.country_code = {
      id: country?.sage200Id ?? 0,
      code: d.address.country,
      name: country?.name ?? d.address.country,
    };
  return out;
}
