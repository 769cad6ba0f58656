/**
 * Conformance (c): Sage's own example payloads (the seeds, vendored under `test/fixtures/sage/spec/seed-*.json`) map to
 * the customers and errors they should. These are payloads nobody on this team wrote.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accessProblem, SageApiError } from '../../../src/errors.js';
import { advanceKeyset, buildCustomersUrl } from '../../../src/providers/sage200/customers.js';
import { mapSage200Customer } from '../../../src/providers/sage200/mapping.js';
import { mapSageAccountingContact } from '../../../src/providers/sage-accounting/mapping.js';
import { parseSage200DateTime } from '../../../src/providers/schema-helpers.js';
import { advanceWatermark } from '../../../src/sync/watermark.js';
import { loadSpec } from './spec-oracle.js';

const sage200Sample = loadSpec('seed-sage200-customers-response.json').body as Record<string, unknown>[];

describe('seed examples map to the expected customer', () => {
  it('Sage 200 sample customer (seed 002, zone-less "2016-07-08T15:28:48.66") → sourceUpdatedAt 2016-07-08T15:28:48.660Z, balance 2464.16, not quarantined', () => {
    const r = mapSage200Customer(sage200Sample[0]);
    assert.ok(r.ok, `quarantined: ${!r.ok ? r.reason : ''}`);
    assert.equal(r.customer.sourceUpdatedAt.toISOString(), '2016-07-08T15:28:48.660Z');
    assert.deepEqual(
      { ...r.customer, sourceUpdatedAt: undefined },
      {
        externalId: '27828',
        reference: 'ABS001',
        name: 'ABS Garages Ltd',
        // No contacts in the sample (not expanded): no e-mail; the account's own number, area + subscriber as printed in the UK.
        email: null,
        phone: '0191 254 5909',
        // Only `currency_id: 2103` is in the sample: no ISO code anywhere, so none is invented (README: open question).
        currency: null,
        balance: 2464.16,
        creditLimit: 4000,
        address: { line1: null, line2: null, city: null, postalCode: null, country: null },
        active: true,
        sourceUpdatedAt: undefined,
      },
    );
  });

  it('the same zone-less time drives the keyset cursor ($filter ends in Z) and the watermark, as UTC', () => {
    const next = advanceKeyset({ from: null, skip: 0 }, sage200Sample);
    assert.deepEqual(next, { from: '2016-07-08T15:28:48.660Z', skip: 1 });
    const url = buildCustomersUrl('https://api.columbus.sage.com/uk/sage200extra/accounts/v1', next, 100);
    assert.equal(url.searchParams.get('$filter'), 'date_time_updated ge 2016-07-08T15:28:48.660Z');
    const r = mapSage200Customer(sage200Sample[0]);
    assert.ok(r.ok);
    assert.deepEqual(advanceWatermark(null, [r.customer]), { updatedAt: '2016-07-08T15:28:48.660Z', id: '27828' });
  });

  it('Sage 200 date-times: with and without fractions (1–7 digits), with and without a zone, all read as UTC', () => {
    const cases: [string, string][] = [
      ['2016-07-08T15:28:48', '2016-07-08T15:28:48.000Z'],
      ['2016-07-08T15:28:48.6', '2016-07-08T15:28:48.600Z'],
      ['2016-07-08T15:28:48.66', '2016-07-08T15:28:48.660Z'],
      ['2016-07-08T15:28:48.1234567', '2016-07-08T15:28:48.123Z'],
      ['2021-08-11T08:51:27.61Z', '2021-08-11T08:51:27.610Z'],
      ['2018-02-28T15:23:46.243+01:00', '2018-02-28T14:23:46.243Z'],
    ];
    for (const [wire, iso] of cases) assert.equal(parseSage200DateTime(wire)?.toISOString(), iso, wire);
    for (const bad of ['2016-07-08', '08/07/2016 15:28', '2016-07-08T15:28:48.66 UTC', ''])
      assert.equal(parseSage200DateTime(bad), null, bad);
  });

  it('Sage Accounting contacts page without attributes (seed: migrate guide) carries only id/displayed_as/$path: rejected for the missing updated_at, never stored half-empty', () => {
    const page = loadSpec('seed-sage-accounting-contacts-page.json').body as { $items: unknown[] };
    for (const item of page.$items) {
      const r = mapSageAccountingContact(item);
      assert.equal(r.ok, false);
      assert.match(!r.ok ? r.reason : '', /updated_at/);
    }
  });

  it('Sage Accounting 401 "No active subscription. (MSE)" (seed: frequently raised errors) → subscription_inactive, not a token problem', () => {
    const body = JSON.stringify(loadSpec('seed-sage-accounting-error-401-no-subscription.json').body);
    const problem = accessProblem(new SageApiError('sage-accounting', 401, '/v3.1/contacts', body));
    assert.equal(problem?.reason, 'subscription_inactive');
    assert.match(problem!.message, /subscription/);
    // The token error Sage sends for a bad token stays a token problem (worth one refresh).
    const tokenError = JSON.stringify([
      {
        $severity: 'error',
        $dataCode: 'AccessTokenVerificationError',
        $message: 'Access token is invalid (JWT malformed or missing).',
        $source: 'Authorization',
      },
    ]);
    assert.equal(accessProblem(new SageApiError('sage-accounting', 401, '/v3.1/contacts', tokenError)), null);
  });

  it('Sage 200 APIM key errors → subscription_key_invalid; an empty 401 body stays ambiguous (one refresh decides)', () => {
    const apim = JSON.stringify({
      statusCode: 401,
      message:
        'Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.',
    });
    assert.equal(
      accessProblem(new SageApiError('sage-200', 401, '/customers', apim))?.reason,
      'subscription_key_invalid',
    );
    assert.equal(accessProblem(new SageApiError('sage-200', 401, '/customers', '')), null);
  });
});
