import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { mapSageAccountingContact } from '../../src/providers/sage-accounting/mapping.js';
import { sageAccountingDateParam } from '../../src/providers/schema-helpers.js';
import { mapSage200Customer } from '../../src/providers/sage200/mapping.js';
import { advanceKeyset, buildCustomersUrl, normalizeTimestamp } from '../../src/providers/sage200/customers.js';
import { resolveApiUrl, SageListEnvelope } from '../../src/providers/sage-accounting/api.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/sage/${name}`, import.meta.url), 'utf8'));

const contact = {
  id: 'cbb711e2da304720beb4cc4a5d8309af',
  displayed_as: 'Jessica B. Hill (Cust #12345)',
  $path: '/contacts/cbb711e2da304720beb4cc4a5d8309af',
  name: 'Jessica B. Hill',
  reference: 'Cust #1234',
  email: null,
  balance: '1120.92',
  credit_limit: '2000.0',
  currency: { id: 'GBP', displayed_as: 'Pound Sterling (GBP)', $path: '/currencies/GBP' },
  main_address: {
    address_line_1: '1 High Street',
    address_line_2: null,
    city: 'Leeds',
    postal_code: 'LS1 1AA',
    country: { id: 'GB', displayed_as: 'United Kingdom (GB)' },
  },
  main_contact_person: { email: 'jess@example.com', telephone: '0113 496 0000', mobile: null },
  is_active: true,
  contact_types: [{ id: 'CUSTOMER', displayed_as: 'Customer' }],
  created_at: '2024-01-01T09:00:00Z',
  updated_at: '2024-03-01T10:21:33Z',
};

test('Sage Accounting: decimal strings ("2000.0") become numbers; contact person fills email and phone', () => {
  const r = mapSageAccountingContact(contact);
  assert.ok(r.ok);
  assert.equal(r.customer.balance, 1120.92);
  assert.equal(r.customer.creditLimit, 2000);
  assert.equal(r.customer.currency, 'GBP');
  assert.equal(r.customer.email, 'jess@example.com');
  assert.equal(r.customer.phone, '0113 496 0000');
  assert.deepEqual(r.customer.address, {
    line1: '1 High Street',
    line2: null,
    city: 'Leeds',
    postalCode: 'LS1 1AA',
    country: 'GB',
  });
  assert.equal(r.customer.sourceUpdatedAt.toISOString(), '2024-03-01T10:21:33.000Z');
  assert.equal(r.customer.externalId, contact.id);
});

test('Sage Accounting quirk: list items without `attributes` (id/displayed_as/$path only) are rejected, not stored half-empty', () => {
  const item = fixture('sage-accounting-contacts-page.json').$items[2];
  const r = mapSageAccountingContact(item);
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.reason.includes('updated_at'), !r.ok ? r.reason : '');
  assert.equal(!r.ok && r.externalId, 'cbb711e2da304720beb4cc4a5d8309af');
});

test('Sage Accounting: vendors are skipped (not quarantined); customer+vendor contacts are kept', () => {
  const vendor = mapSageAccountingContact({ ...contact, contact_types: [{ id: 'VENDOR' }] });
  assert.ok(!vendor.ok && vendor.skip === true);
  assert.ok(mapSageAccountingContact({ ...contact, contact_types: [{ id: 'VENDOR' }, { id: 'CUSTOMER' }] }).ok);
});

test('quarantine reasons name the field: missing id, mistyped decimal, huge string, bad timestamp', () => {
  const reason = (raw: unknown) => {
    const r = mapSageAccountingContact(raw);
    assert.ok(!r.ok && !r.skip, 'expected a rejection');
    return r.reason;
  };
  const { id: _id, ...noId } = contact;
  assert.match(reason(noId), /^id:/);
  assert.match(reason({ ...contact, balance: 'lots' }), /balance: not a decimal number/);
  assert.match(reason({ ...contact, balance: { amount: 1 } }), /balance/);
  assert.match(reason({ ...contact, name: 'x'.repeat(100_000) }), /name: longer than 2000 characters/);
  assert.match(reason({ ...contact, updated_at: 'yesterday' }), /updated_at: not an ISO-8601 timestamp/);
  assert.match(reason({ ...contact, is_active: 'yes' }), /is_active/);
});

test('U+0000 anywhere in a payload (value or key) is quarantined with its path: PostgreSQL under FerretDB cannot store it', () => {
  const withNul = { ...contact, main_address: { ...contact.main_address, city: 'Le\u0000eds' } };
  for (const r of [mapSageAccountingContact(withNul), mapSage200Customer({ id: 7, name: 'A', ['ke\u0000y']: 1 })]) {
    assert.ok(!r.ok && !r.skip, 'expected a rejection');
    assert.match(r.reason, /contains U\+0000/);
  }
  assert.match((mapSageAccountingContact(withNul) as { reason: string }).reason, /^main_address\.city:/);
  assert.equal(
    (mapSageAccountingContact(withNul) as { externalId: string | null }).externalId,
    contact.id,
    'the quarantine entry still names the record',
  );
});

test('Sage 200: the reference sample maps; ids become strings; phone parts joined; e-mail from contacts', () => {
  const sample = {
    ...fixture('sage200-customer.json'),
    id: 27825,
    reference: 'A1D001',
    name: 'A1 Design Services',
    balance: 1120.92,
    credit_limit: '5000.00',
    date_time_updated: '2021-08-11T08:51:27.61Z',
    contacts: [
      { is_default: false, default_email: 'other@example.com' },
      { is_default: true, default_email: '', emails: [{ email: 'a1@example.com', is_default: true }] },
    ],
    currency: { iso_code: 'GBP' },
    main_address: { address_1: '1 Street', address_2: null, city: 'York', postcode: 'YO1 1AA', country_code: 'GB' },
  };
  const r = mapSage200Customer(sample);
  assert.ok(r.ok, !r.ok ? r.reason : '');
  assert.equal(r.customer.externalId, '27825');
  assert.equal(r.customer.creditLimit, 5000);
  assert.equal(r.customer.email, 'a1@example.com');
  assert.equal(r.customer.phone, 'string string');
  assert.equal(r.customer.currency, 'GBP');
  assert.equal(r.customer.address.country, 'GB');
  assert.equal(r.customer.active, true);
  assert.equal(r.customer.sourceUpdatedAt.toISOString(), '2021-08-11T08:51:27.610Z');
  assert.equal(mapSage200Customer({ ...sample, account_status_type: 'AccountStatusHidden' }).ok && true, true);
  const bad = mapSage200Customer({ ...sample, id: -3 });
  assert.ok(!bad.ok && /^id/.test(bad.reason));
});

test('Sage 200 keyset paging: `$orderby` always sent; `$skip` only for ties at the cursor timestamp', () => {
  const base = 'http://sim/sage200/api/uk/sage200extra/accounts/v1';
  const first = buildCustomersUrl(base, { from: null, skip: 0 }, 3);
  assert.equal(first.searchParams.get('$orderby'), 'date_time_updated asc, id asc');
  assert.equal(first.searchParams.get('$skip'), null);
  assert.equal(first.searchParams.get('$filter'), null);
  const rows = [
    { id: 1, date_time_updated: '2024-01-01T00:00:00.1Z' },
    { id: 2, date_time_updated: '2024-01-01T00:00:01.2Z' },
    { id: 3, date_time_updated: '2024-01-01T00:00:01.20Z' },
  ];
  const next = advanceKeyset({ from: null, skip: 0 }, rows);
  assert.deepEqual(next, { from: '2024-01-01T00:00:01.200Z', skip: 2 });
  const url = buildCustomersUrl(base, next, 3);
  assert.equal(url.searchParams.get('$filter'), 'date_time_updated ge 2024-01-01T00:00:01.200Z');
  assert.equal(url.searchParams.get('$skip'), '2');
  assert.equal(url.searchParams.get('$orderby'), 'date_time_updated asc, id asc');
  // A whole page of ties keeps counting.
  assert.deepEqual(advanceKeyset(next, [rows[2], rows[2], rows[2]]), { from: '2024-01-01T00:00:01.200Z', skip: 5 });
  assert.throws(() => advanceKeyset(next, [rows[0]]), /out of order/);
  assert.equal(normalizeTimestamp('2021-08-11T08:51:27.61'), '2021-08-11T08:51:27.610Z');
});

test('Sage Accounting: `$next` paths resolve under /v3.1; other origins are refused; both items-per-page spellings parse', () => {
  const base = 'http://127.0.0.1:4010/sage-accounting/v3.1';
  assert.equal(
    resolveApiUrl(base, '/contacts?page=2&items_per_page=200').toString(),
    'http://127.0.0.1:4010/sage-accounting/v3.1/contacts?page=2&items_per_page=200',
  );
  assert.equal(
    resolveApiUrl(base, '/v3.1/contacts?page=2').toString(),
    'http://127.0.0.1:4010/sage-accounting/v3.1/contacts?page=2',
  );
  assert.throws(() => resolveApiUrl(base, 'https://evil.example/contacts'), /another origin/);
  assert.equal(SageListEnvelope.parse(fixture('sage-accounting-businesses-page.json')).$items_per_page, 2147483647);
  assert.equal(SageListEnvelope.parse(fixture('sage-accounting-contacts-page.json')).$itemsPerPage, 20);
});

test('Sage 200 currency: an ISO code only where one is present (nested currency_iso_code, or a 3-letter code field); never guessed', () => {
  const base = { id: 1, date_time_updated: '2016-07-08T15:28:48.66' };
  const currencyOf = (currency: unknown) => {
    const r = mapSage200Customer({ ...base, currency });
    assert.ok(r.ok, !r.ok ? r.reason : '');
    return r.customer.currency;
  };
  assert.equal(currencyOf({ id: 2103, currency_iso_code: { id: 49, code: 'GBP', name: 'Pound Sterling' } }), 'GBP');
  assert.equal(currencyOf({ id: 2103, currency_iso_code: 'EUR' }), 'EUR');
  assert.equal(currencyOf({ id: 2103, iso_code: 'USD' }), 'USD');
  // What integrators' field lists show (CData, Zynk): no ISO code string at all → null, not "£" or "Pound Sterling".
  assert.equal(
    currencyOf({ id: 2103, symbol: '£', name: 'Pound Sterling', currency_iso_code_id: 49, is_base_currency: true }),
    null,
  );
  assert.equal(currencyOf({ id: 2103, code: 'gbp' }), null, 'not an ISO 4217 code');
  assert.equal(currencyOf(undefined), null);
});

test('Sage Accounting date parameters: documented YYYY-MM-DDThh:mm:ss(+|-)hh:mm, whole seconds rounded down (reads more, never less)', () => {
  assert.equal(sageAccountingDateParam(new Date('2024-03-01T10:21:33.999Z')), '2024-03-01T10:21:33+00:00');
  assert.equal(sageAccountingDateParam(new Date('2024-03-01T00:00:00.000Z')), '2024-03-01T00:00:00+00:00');
});
