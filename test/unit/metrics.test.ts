/**
 * Our Prometheus metrics: names and labels the README documents, Sage responses timed and 429s counted, ids collapsed
 * out of the latency histogram's labels, and the worker endpoint serving our registry plus the SDK runtime's text.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import {
  countReauthorization,
  countSyncRecords,
  countTokenRefresh,
  normaliseSagePath,
  observeSageResponse,
  recordSyncSucceeded,
  registry,
} from '../../src/lib/metrics.js';
import { startWorkerMetricsServer } from '../../src/lib/metrics-server.js';

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

const value = async (name: string, labels: Record<string, string>) => {
  const m = (await registry.getSingleMetric(name)?.get())?.values.find((v) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return m?.value ?? 0;
};

test('reauthorization reasons are a bounded label set: a reason built from an unexpected Sage error string counts as other', async () => {
  const before = await value('sage_sync_reauthorizations_required_total', {
    provider: 'sage-accounting',
    reason: 'other',
  });
  countReauthorization('sage-accounting', 'oauth_made_up_by_a_hostile_endpoint_1');
  countReauthorization('sage-accounting', 'oauth_made_up_by_a_hostile_endpoint_2');
  countReauthorization('sage-accounting', 'refresh_response_lost');
  assert.equal(
    await value('sage_sync_reauthorizations_required_total', { provider: 'sage-accounting', reason: 'other' }),
    before + 2,
  );
  assert.equal(
    await value('sage_sync_reauthorizations_required_total', {
      provider: 'sage-accounting',
      reason: 'refresh_response_lost',
    }),
    1,
  );
  const labels = (await registry.getSingleMetric('sage_sync_reauthorizations_required_total')!.get()).values.map((v) =>
    String(v.labels.reason),
  );
  assert.deepEqual(
    labels.filter((l) => l.startsWith('oauth_made_up')),
    [],
  );
});

test('counters by provider and outcome', async () => {
  countTokenRefresh('sage-accounting', 'success');
  countTokenRefresh('sage-accounting', 'invalid_grant');
  countReauthorization('sage-200', 'refresh_token_invalid');
  countSyncRecords('sage-accounting', { fetched: 100, upserted: 40, quarantined: 2 });
  assert.equal(await value('sage_sync_token_refreshes_total', { provider: 'sage-accounting', outcome: 'success' }), 1);
  assert.equal(
    await value('sage_sync_token_refreshes_total', { provider: 'sage-accounting', outcome: 'invalid_grant' }),
    1,
  );
  assert.equal(
    await value('sage_sync_reauthorizations_required_total', { provider: 'sage-200', reason: 'refresh_token_invalid' }),
    1,
  );
  assert.equal(await value('sage_sync_records_fetched_total', { provider: 'sage-accounting' }), 100);
  assert.equal(await value('sage_sync_records_upserted_total', { provider: 'sage-accounting' }), 40);
  assert.equal(await value('sage_sync_records_quarantined_total', { provider: 'sage-accounting' }), 2);
});

test('Sage responses: latency histogram by normalised path and status class; 429s counted', async () => {
  observeSageResponse({
    provider: 'sage-accounting',
    path: '/v3.1/contacts/8f14e45fceea167a5a36dedd4bea2543',
    status: 200,
    durationMs: 120,
  });
  observeSageResponse({ provider: 'sage-accounting', path: '/v3.1/contacts', status: 429, durationMs: 5 });
  assert.equal(await value('sage_sync_sage_rate_limited_total', { provider: 'sage-accounting' }), 1);
  const text = await registry.metrics();
  assert.match(
    text,
    /sage_sync_sage_request_duration_seconds_count\{provider="sage-accounting",operation="\/v3\.1\/contacts\/:id",status="2xx"\} 1/,
  );
  assert.match(
    text,
    /sage_sync_sage_request_duration_seconds_count\{provider="sage-accounting",operation="\/v3\.1\/contacts",status="4xx"\} 1/,
  );
});

test('normaliseSagePath keeps resource names and collapses ids', () => {
  assert.equal(normaliseSagePath('/v3.1/contacts'), '/v3.1/contacts');
  assert.equal(normaliseSagePath('/v3.1/businesses/8f14e45fceea167a5a36dedd4bea2543'), '/v3.1/businesses/:id');
  assert.equal(
    normaliseSagePath('/uk/sage200extra/accounts/v1/customers/12345'),
    '/uk/sage200extra/accounts/v1/customers/:id',
  );
});

test('the last successful sync is a per-connection timestamp gauge', async () => {
  recordSyncSucceeded('sage-accounting', 'acme', new Date('2030-01-01T00:00:00Z'));
  assert.equal(
    await value('sage_sync_last_sync_success_timestamp_seconds', { provider: 'sage-accounting', tenant_id: 'acme' }),
    Date.parse('2030-01-01T00:00:00Z') / 1000,
  );
});

test('the worker metrics endpoint serves our registry followed by the SDK runtime metrics', async () => {
  const sdk = createServer((_req, res) => res.end('# TYPE temporal_worker_start counter\ntemporal_worker_start 1\n'));
  servers.push(sdk);
  await new Promise<void>((r) => sdk.listen(0, '127.0.0.1', () => r()));
  const server = await startWorkerMetricsServer({
    port: 0,
    host: '127.0.0.1',
    sdkMetricsUrl: `http://127.0.0.1:${(sdk.address() as AddressInfo).port}/metrics`,
  });
  servers.push(server);
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, /^# HELP sage_sync_token_refreshes_total/m);
  assert.match(text, /^temporal_worker_start 1$/m);
  assert.equal((await fetch(`${base}/other`)).status, 404);
});
