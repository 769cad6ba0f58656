/**
 * Deterministic data: users' businesses / sites and each partition's customers, all derived from the seed.
 *
 * Customers are stored compactly (id, kind, timestamps, deletion, version) so 100k+ per partition are cheap; the full
 * payload (name, reference, address, balance, …) is derived on demand from (seed, partition, seq, version). An update bumps
 * `version`, which changes the mutable fields (balance, credit limit, phone, address line 2) but never name or reference.
 */
import { hash32, hex, intBetween, pick, prng } from './random.js';

export type SimProvider = 'sage-accounting' | 'sage-200';
export type ContactKind = 'customer' | 'vendor' | 'both';

export interface CustomerRecord {
  /** Creation order inside the partition; also the default list order. */
  seq: number;
  /** Sage Accounting: 32-hex string; Sage 200: an integer, kept as a decimal string here. */
  id: string;
  kind: ContactKind;
  /** Epoch ms. Whole seconds for Sage Accounting (it shows seconds); whole centiseconds for Sage 200. */
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
  version: number;
}

export interface PartitionData {
  provider: SimProvider;
  /** Business id (Sage Accounting) or company id as a string (Sage 200). */
  id: string;
  seed: number;
  records: CustomerRecord[];
  byId: Map<string, CustomerRecord>;
  /** Bumped on every mutation; invalidates sorted views. */
  version: number;
  nextSageId: number;
}

const DATA_START = Date.UTC(2022, 0, 1);
const DATA_CREATED_END = Date.UTC(2025, 0, 1);
const DATA_UPDATED_END = Date.UTC(2025, 5, 1);

/** Rounds a time to what the provider can show: seconds (Accounting) or centiseconds (Sage 200). */
export function providerTime(provider: SimProvider, ms: number): number {
  return provider === 'sage-accounting' ? Math.floor(ms / 1000) * 1000 : Math.floor(ms / 10) * 10;
}

function kindFor(provider: SimProvider, seq: number): ContactKind {
  // Sage 200 `/customers` holds customers only (suppliers are another ledger). Sage Accounting contacts mix in vendors:
  // every 5th contact is a vendor and every 50th (offset 9) is both customer and vendor.
  if (provider === 'sage-200') return 'customer';
  if (seq % 5 === 4) return 'vendor';
  if (seq % 50 === 9) return 'both';
  return 'customer';
}

export const isCustomer = (r: CustomerRecord) => r.kind !== 'vendor';

/** Builds a partition with exactly `customers` customers (plus vendors for Sage Accounting). Fast: ~100 ms per 100k. */
export function generatePartition(provider: SimProvider, id: string, seed: number, customers: number): PartitionData {
  const pseed = hash32(seed, provider, id);
  const rnd = prng(pseed);
  const p: PartitionData = {
    provider,
    id,
    seed: pseed,
    records: [],
    byId: new Map(),
    version: 0,
    nextSageId: 20000 + intBetween(rnd, 0, 9000),
  };
  // Estimate total contacts so creation times spread evenly over the window.
  const total = provider === 'sage-accounting' ? Math.ceil((customers * 5) / 4) + 1 : customers;
  const step = (DATA_CREATED_END - DATA_START) / Math.max(total, 1);
  let made = 0;
  for (let seq = 0; made < customers; seq++) {
    const kind = kindFor(provider, seq);
    const createdAt = providerTime(provider, DATA_START + seq * step + rnd() * step * 0.5);
    let updatedAt = providerTime(provider, createdAt + rnd() * (DATA_UPDATED_END - createdAt));
    // Ties: some consecutive records share the previous record's updated_at exactly (a batch import / bulk edit), so
    // a client paging by `updated_at > watermark` loses records unless it handles equal timestamps.
    const prev = p.records[seq - 1];
    if (prev && seq % 7 !== 0 && seq % 7 <= 2 && prev.updatedAt >= createdAt) updatedAt = prev.updatedAt;
    const rec: CustomerRecord = { seq, id: newId(p, rnd), kind, createdAt, updatedAt, deletedAt: null, version: 0 };
    p.records.push(rec);
    p.byId.set(rec.id, rec);
    if (kind !== 'vendor') made++;
  }
  return p;
}

function newId(p: PartitionData, rnd: () => number): string {
  if (p.provider === 'sage-accounting') return hex(rnd, 32);
  // Sage 200 ids are int64 identity values: increasing, with occasional gaps.
  p.nextSageId += rnd() < 0.1 ? intBetween(rnd, 2, 6) : 1;
  return String(p.nextSageId);
}

/** Appends a new customer created at `now` (admin mutate `create`). */
export function createCustomer(p: PartitionData, now: number): CustomerRecord {
  const rnd = prng(hash32(p.seed, 'create', p.records.length));
  const seq = p.records.length;
  let id = newId(p, rnd);
  while (p.byId.has(id)) id = newId(p, rnd);
  const t = providerTime(p.provider, now);
  const rec: CustomerRecord = { seq, id, kind: 'customer', createdAt: t, updatedAt: t, deletedAt: null, version: 0 };
  p.records.push(rec);
  p.byId.set(id, rec);
  p.version++;
  return rec;
}

// ---------------------------------------------------------------------------------------------------------------------
// Derived customer details (the same for both providers; each API shapes them its own way)

const SURNAMES = [
  'Hill',
  'Patel',
  'Okafor',
  'Smith',
  'Nowak',
  'Murphy',
  'Jones',
  'Khan',
  'Williams',
  'Brown',
  'Evans',
  'Taylor',
  "O'Neill",
  'Müller',
  'García',
  'Chen',
  'Davies',
  'Wilson',
  'Thomas',
  'Roberts',
  'Walker',
  'Wright',
  'Lefèvre',
  'Kowalski',
];
const FIRST = [
  'Jessica',
  'Amir',
  'Chloe',
  'Oliver',
  'Zoë',
  'Liam',
  'Priya',
  'Noah',
  'Sofia',
  'Hamish',
  'Aoife',
  'Tomasz',
  'Grace',
  'Yusuf',
];
const WORDS = [
  'Northern',
  'Riverside',
  'Apex',
  'Granite',
  'Harbour',
  'Meadow',
  'Summit',
  'Oak',
  'Copper',
  'Thistle',
  'Beacon',
  'Willow',
  'Kestrel',
  'Blue Anchor',
  'Castle',
  'Orchard',
];
const TRADES = [
  'Joinery',
  'Garages',
  'Design Services',
  'Plumbing',
  'Catering',
  'Logistics',
  'Print',
  'Electrical',
  'Bakery',
  'Café',
  'Engineering',
  'Consulting',
  'Florists',
  'Builders',
  'Motors',
  'Dental Care',
];
const SUFFIX = ['Ltd', 'Limited', 'LLP', '& Sons', 'plc', 'Ltd', ''];
const STREETS = [
  'High Street',
  'Station Road',
  'Church Lane',
  'Mill Road',
  'Victoria Street',
  'Park Avenue',
  'Queen Street',
  'The Green',
  'Market Place',
  'Kings Road',
];
const CITIES_GB = [
  'Leeds',
  'Newcastle upon Tyne',
  'Bristol',
  'Manchester',
  'Glasgow',
  'Cardiff',
  'Norwich',
  'York',
  'Belfast',
  'Brighton',
];
const REGIONS_GB = [
  'West Yorkshire',
  'Tyne & Wear',
  'Avon',
  'Greater Manchester',
  'Lanarkshire',
  'South Glamorgan',
  'Norfolk',
  'North Yorkshire',
  'Antrim',
  'East Sussex',
];

export interface Currency {
  code: 'GBP' | 'EUR' | 'USD';
  name: string;
  sage200Id: number;
}
export const CURRENCIES: Record<Currency['code'], Currency> = {
  GBP: { code: 'GBP', name: 'Pound Sterling', sage200Id: 2103 },
  EUR: { code: 'EUR', name: 'Euro', sage200Id: 2104 },
  USD: { code: 'USD', name: 'US Dollar', sage200Id: 2105 },
};
export const COUNTRIES: Record<string, { name: string; sage200Id: number }> = {
  GB: { name: 'United Kingdom', sage200Id: 13 },
  IE: { name: 'Ireland', sage200Id: 14 },
  FR: { name: 'France', sage200Id: 9 },
  US: { name: 'United States', sage200Id: 40 },
};

export interface CustomerDetails {
  name: string;
  /** Unique within the partition: ≤ 10 chars for Sage Accounting, ≤ 8 for Sage 200. */
  reference: string;
  email: string | null;
  contactName: string;
  phone: { country: string; area: string; number: string } | null;
  website: string | null;
  currency: Currency;
  balance: number;
  creditLimit: number;
  creditDays: number;
  onHold: boolean;
  active: boolean;
  vatNumber: string | null;
  address: {
    line1: string;
    line2: string | null;
    city: string;
    region: string | null;
    postalCode: string;
    country: string;
  };
}

function letters(name: string, n: number): string {
  // normalize() is slow; only names with accents need it.
  // eslint-disable-next-line no-control-regex -- "only ASCII", NUL included
  const ascii = /^[\x00-\x7f]*$/.test(name) ? name : name.normalize('NFD');
  const l = ascii.replace(/[^A-Za-z]/g, '').toUpperCase();
  return (l + 'XXXX').slice(0, n);
}

function referenceFor(provider: SimProvider, name: string, seq: number): string {
  const num = seq + 1;
  if (provider === 'sage-accounting') return `${letters(name, 4)}${String(num).padStart(3, '0')}`.slice(0, 10);
  return num < 100000
    ? `${letters(name, 3)}${String(num).padStart(5, '0')}`
    : `${letters(name, 2)}${String(num).padStart(6, '0')}`.slice(0, 8);
}

function postcode(rnd: () => number): string {
  const A = 'ABCDEFGHJKLMNPRSTUWYZ';
  return `${pick(rnd, [...A])}${pick(rnd, [...A])}${intBetween(rnd, 1, 29)} ${intBetween(rnd, 1, 9)}${pick(rnd, [...A])}${pick(rnd, [...A])}`;
}

export function customerDetails(p: PartitionData, rec: CustomerRecord): CustomerDetails {
  const r = prng(hash32(p.seed, rec.seq));
  const personal = r() < 0.2;
  const surname = pick(r, SURNAMES);
  const first = pick(r, FIRST);
  const name = personal
    ? `${first} ${String.fromCharCode(65 + intBetween(r, 0, 25))}. ${surname}`
    : `${r() < 0.5 ? surname : pick(r, WORDS)} ${pick(r, TRADES)} ${pick(r, SUFFIX)}`.trim();
  const curRoll = r();
  const currency = curRoll < 0.8 ? CURRENCIES.GBP : curRoll < 0.92 ? CURRENCIES.EUR : CURRENCIES.USD;
  const country = currency.code === 'GBP' ? 'GB' : currency.code === 'USD' ? 'US' : r() < 0.6 ? 'IE' : 'FR';
  const cityIdx = intBetween(r, 0, CITIES_GB.length - 1);
  const domain = `${letters(name, 6).toLowerCase()}${rec.seq}.example.com`;
  const email =
    r() < 0.1
      ? null
      : `${
          personal
            ? first
                .normalize('NFD')
                .replace(/[^A-Za-z]/g, '')
                .toLowerCase()
            : 'accounts'
        }@${domain}`;
  const website = personal || r() < 0.3 ? null : `www.${domain}`;
  const vatNumber =
    country === 'GB' && !personal && r() < 0.7
      ? `GB${intBetween(r, 100, 999)} ${intBetween(r, 1000, 9999)} ${intBetween(r, 10, 99)}`
      : null;
  const line1 = `${intBetween(r, 1, 240)} ${pick(r, STREETS)}`;
  // Mutable fields: they change with each update (version).
  const v = prng(hash32(p.seed, rec.seq, 'v', rec.version));
  const balanceRoll = v();
  const balance = balanceRoll < 0.25 ? 0 : Math.round((balanceRoll < 0.33 ? -1 : 1) * v() * 25000 * 100) / 100;
  const creditLimit = v() < 0.2 ? 0 : intBetween(v, 1, 20) * 500;
  const phone =
    v() < 0.1
      ? null
      : {
          country: country === 'US' ? '1' : '44',
          area: `0${intBetween(v, 113, 191)}`,
          number: `${intBetween(v, 200, 999)} ${intBetween(v, 1000, 9999)}`,
        };
  const line2 = v() < 0.5 ? null : `Unit ${intBetween(v, 1, 40)}`;
  return {
    name,
    reference: referenceFor(p.provider, name, rec.seq),
    email,
    contactName: `${first} ${surname}`,
    phone,
    website,
    currency,
    balance,
    creditLimit,
    creditDays: pick(r, [0, 14, 30, 30, 60]),
    onHold: v() < 0.05,
    active: v() >= 0.04,
    vatNumber,
    address: {
      line1,
      line2,
      city:
        country === 'GB'
          ? (CITIES_GB[cityIdx] as string)
          : country === 'IE'
            ? 'Dublin'
            : country === 'FR'
              ? 'Lyon'
              : 'Boston',
      region: country === 'GB' ? (REGIONS_GB[cityIdx] as string) : null,
      postalCode:
        country === 'GB'
          ? postcode(r)
          : country === 'IE'
            ? `D0${intBetween(r, 1, 9)} X${intBetween(r, 100, 999)}`
            : `${intBetween(r, 10000, 99999)}`,
      country,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Users, businesses, sites

export interface AccountingBusiness {
  id: string;
  name: string;
  country: string;
  createdAt: number;
  city: string;
  postalCode: string;
  addressLine1: string;
}

export interface Sage200Site {
  companyId: number;
  companyName: string;
  tenantId: number;
  siteId: string;
  siteName: string;
  siteShortName: string;
}

export function makeBusiness(seed: number, userIndex: number, k: number, country: string): AccountingBusiness {
  const r = prng(hash32(seed, 'business', userIndex, k));
  const name = `${pick(r, WORDS)} ${pick(r, TRADES)} ${pick(r, ['Ltd', 'Limited', 'LLP'])}`;
  return {
    id: hex(r, 32),
    name: k === 0 ? name : `${name} (${k + 1})`,
    country,
    createdAt: Date.UTC(2019, 0, 1) + userIndex * 86_400_000 + k * 3_600_000,
    city: pick(r, CITIES_GB),
    postalCode: postcode(r),
    addressLine1: `${intBetween(r, 1, 240)} ${pick(r, STREETS)}`,
  };
}

export function makeSite(seed: number, userIndex: number, k: number, companyId: number): Sage200Site {
  const r = prng(hash32(seed, 'site', userIndex, k));
  const word = pick(r, WORDS);
  return {
    companyId,
    companyName: `${word} ${pick(r, TRADES)} ${pick(r, ['Ltd', 'Limited'])}`,
    tenantId: 1000 + userIndex,
    siteId: `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-a${hex(r, 3)}-${hex(r, 12)}`.toUpperCase(),
    siteName: k === 0 ? 'Demodata' : `Site ${k + 1}`,
    siteShortName: `${letters(word, 6).toLowerCase()}${k + 1}`,
  };
}
