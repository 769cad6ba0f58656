/**
 * The connections page in a real headless Chromium (Debian `chromium`, driven by playwright-core), served by the real web
 * server (buildServer) against the Temporal dev server, FerretDB, a real worker and the Sage simulator. A visitor
 * connects a tenant from the page, syncs it, watches the counts land, sees it need reauthorization after the customer
 * revokes access at Sage, reconnects and disconnects it — only by clicking, logged in with HTTP Basic (the operator
 * credential as the password). A screenshot is saved to test-output/connections-page.png.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { COLLECTIONS } from '../../src/lib/mongo.js';
import { createLogger } from '../../src/lib/logger.js';
import { connectionWorkflowId, getAccessTokenUpdate, statusQuery } from '../../src/messages.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server.js';
import { buildServer } from '../../src/web/server.js';
import { operatorAuth, TEST_OPERATOR_TOKEN, testStack, uniqueName, type TestStack } from '../helpers/env.js';
import { freePort } from '../helpers/ports.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT_DIR = path.resolve(import.meta.dirname, '..', '..', 'test-output');
const SCREENSHOT = path.join(OUT_DIR, 'connections-page.png');
const CUSTOMERS_PER_PARTITION = 6;

let sim: RunningSimulator;
let stack: TestStack;
let web: FastifyInstance;
let browser: Browser;
let page: Page;
let base: string;
const tenant = uniqueName('page').replace(/_/g, '-');
const denied = uniqueName('denied').replace(/_/g, '-');
const workflowId = connectionWorkflowId('sage-accounting', tenant);

const row = (t: string) => page.locator(`tr[data-workflow-id="${connectionWorkflowId('sage-accounting', t)}"]`);

/** Reloads the page until `check` passes (the page has no script; an operator would press Refresh). */
async function reloadUntil(what: string, check: () => Promise<boolean>, timeoutMs = 150_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await page.goto(`${base}/connections`);
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}\n${await page.locator('main').innerText()}`);
    await sleep(1_000);
  }
}

before(async () => {
  // The page test needs a real browser. A missing one is a failure with instructions, never a skip.
  assert.ok(
    existsSync(CHROMIUM),
    `Chromium not found at ${CHROMIUM}. Install it with \`apt-get update && apt-get install -y chromium\` (Debian; .ci/run does this) or set CHROMIUM_PATH.`,
  );
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  sim = await startSimulator({
    customersPerPartition: CUSTOMERS_PER_PARTITION,
    usersPerProvider: 0,
    partitionsPerUser: { sageAccounting: 2 },
    apps: {
      sageAccounting: { redirectUri: `${base}/oauth/callback` },
      sage200: { redirectUri: `${base}/oauth/callback` },
    },
  });
  stack = await testStack({ ...sim.env, PUBLIC_BASE_URL: base, PORT: String(port) });
  await stack.startWorker();
  web = await buildServer({
    config: stack.config,
    client: stack.client,
    mongo: stack.mongo,
    log: createLogger({ level: 'silent' }),
  });
  await web.listen({ port, host: '127.0.0.1' });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({
    viewport: { width: 1500, height: 900 },
    httpCredentials: { username: 'operator', password: TEST_OPERATOR_TOKEN },
  });
});

after(async () => {
  await browser?.close();
  await web?.close();
  for (const id of [workflowId, connectionWorkflowId('sage-accounting', denied)]) {
    await stack?.client.workflow
      .getHandle(id)
      .terminate('test cleanup')
      .catch(() => {});
  }
  await stack?.close();
  await sim?.close();
});

test('the connections page drives a connection through its life in a real browser', async (t) => {
  await t.test('a browser that has not logged in gets a login challenge, not the page', async () => {
    const anonymous = await browser.newPage();
    try {
      // Headless Chromium cannot show the login dialog, so the navigation fails; the answer it got is what matters.
      const answer = anonymous.waitForResponse(`${base}/connections`);
      await anonymous
        .goto(`${base}/connections`)
        .catch((err: Error) => assert.match(err.message, /ERR_INVALID_AUTH_CREDENTIALS/));
      const res = await answer;
      assert.equal(res.status(), 401);
      assert.match(String(res.headers()['www-authenticate']), /^Basic /);
      assert.doesNotMatch(await res.text(), /Sage connections/);
    } finally {
      await anonymous.close();
    }
  });

  await t.test('an empty page explains how to start, in plain accessible HTML', async () => {
    const res = await page.goto(`${base}/`);
    assert.equal(res?.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/connections', '/ redirects to the connections page');
    assert.equal(await page.title(), 'Sage connections');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.match(await page.locator('#no-connections').innerText(), /No connections yet/);
    // Every form control has a label a screen reader can announce.
    const unlabelled = await page.$$eval('input:not([type=hidden]), select', (els) =>
      els
        .filter(
          (e) =>
            !(e as unknown as { labels: { length: number } | null }).labels?.length && !e.getAttribute('aria-label'),
        )
        .map((e) => e.outerHTML),
    );
    assert.deepEqual(unlabelled, []);
  });

  await t.test('Connect: the form sends the visitor through Sage consent and back to a "Connected" page', async () => {
    await page.getByLabel('Tenant id').fill(tenant);
    await page.getByLabel('Provider').selectOption('sage-accounting');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.waitForURL(/\/oauth\/callback\?/);
    assert.equal(await page.locator('h1').innerText(), 'Connected to Sage');
  });

  await t.test('the table shows the connection: state, partitions, token expiry, actions', async () => {
    await page.goto(`${base}/connections`);
    const r = row(tenant);
    assert.equal(await r.count(), 1);
    assert.equal(await r.getAttribute('data-state'), 'connected');
    const headers = await page.locator('#connections thead th[scope=col]').allInnerTexts();
    assert.deepEqual(headers, [
      'Tenant',
      'Provider',
      'State',
      'Partitions',
      'Access token expires',
      'Refresh token expires',
      'Last sync per partition',
      'Customers',
      'Actions',
    ]);
    assert.match(await page.locator('#connections caption').innerText(), /1 connection/);
    const cells = await r.locator('td').allInnerTexts();
    assert.equal(cells[0], 'sage-accounting');
    assert.match(cells[1] ?? '', /Connected/);
    const partitions = (await stack.client.workflow.getHandle(workflowId).query(statusQuery)).partitions;
    assert.equal(partitions.length, 2);
    for (const p of partitions) assert.ok(cells[2]?.includes(p.id), `partition ${p.id} listed`);
    assert.match(
      cells[3] ?? '',
      /\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(in \d+ (s|min)\)/,
      'access token expiry with a relative time',
    );
    assert.match(cells[4] ?? '', /\(in \d+ d\)/, 'refresh token expiry');
    assert.ok(await r.getByRole('button', { name: `Sync ${tenant} (sage-accounting) now` }).isVisible());
    assert.ok(await r.getByRole('button', { name: `Disconnect ${tenant} (sage-accounting)` }).isVisible());
  });

  await t.test(
    'the first sync runs right after consent; Sync now (full) runs another, which changes nothing',
    async () => {
      const total = CUSTOMERS_PER_PARTITION * 2;
      const bothSucceededFull = async () => {
        const cells = await row(tenant).locator('td').allInnerTexts();
        return cells[6] === String(total) && (cells[5]?.match(/succeeded full/g) ?? []).length === 2;
      };
      await reloadUntil(`customers column shows ${total} and both partitions succeeded`, bothSucceededFull);
      const firstCell = (await row(tenant).locator('td').allInnerTexts())[5] ?? '';
      assert.match(
        firstCell,
        new RegExp(
          `fetched ${CUSTOMERS_PER_PARTITION}, upserted ${CUSTOMERS_PER_PARTITION}, modified 0, deleted 0, quarantined 0`,
        ),
      );

      const r = row(tenant);
      await r.getByLabel(`Sync mode for ${tenant} (sage-accounting)`).selectOption('full');
      await r.getByRole('button', { name: `Sync ${tenant} (sage-accounting) now` }).click();
      await page.waitForURL(/done=sync_requested/);
      assert.match(await page.getByRole('status').innerText(), /Sync requested for/);
      // Two runs × two businesses; the second full run finds nothing new and rewrites nothing.
      for (const deadline = Date.now() + 120_000; ; await sleep(500)) {
        const runs = await stack.mongo.collection(COLLECTIONS.syncRuns).find({ tenantId: tenant }).toArray();
        if (runs.length === 4 && runs.every((x) => x.status === 'succeeded')) break;
        assert.ok(
          Date.now() < deadline,
          `the requested sync did not finish: ${JSON.stringify(runs.map((x) => [x.status, x.mode]))}`,
        );
      }
      await reloadUntil('the second run is shown', async () => {
        const cells = await row(tenant).locator('td').allInnerTexts();
        return (cells[5]?.match(/upserted 0/g) ?? []).length === 2 && (await bothSucceededFull());
      });
      const syncCell = (await row(tenant).locator('td').allInnerTexts())[5] ?? '';
      assert.match(
        syncCell,
        new RegExp(`fetched ${CUSTOMERS_PER_PARTITION}, upserted 0, modified 0, deleted 0, quarantined 0`),
      );
    },
  );

  await t.test(
    'a denied consent leaves a second tenant awaiting authorization with its reason and a Reconnect link',
    async () => {
      sim.admin.nextConsent({ provider: 'sage-accounting', deny: 'access_denied' });
      await page.goto(`${base}/connections`);
      await page.getByLabel('Tenant id').fill(denied);
      await page.getByRole('button', { name: 'Connect', exact: true }).click();
      await page.waitForURL(/\/oauth\/callback\?/);
      assert.match(await page.locator('h1').innerText(), /did not authorize/);
      await reloadUntil('the denied tenant is listed', async () => (await row(denied).count()) === 1);
      assert.equal(await row(denied).getAttribute('data-state'), 'awaiting_authorization');
      assert.ok(
        await row(denied)
          .getByRole('link', { name: `Reconnect ${denied} (sage-accounting)` })
          .isVisible(),
      );
      mkdirSync(OUT_DIR, { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    },
  );

  await t.test(
    'after the customer revokes access at Sage: Reauthorization required, then Reconnect restores it',
    async () => {
      const userId = sim.admin.grants('sage-accounting').grants.find((g) => !g.revoked)?.userId;
      assert.ok(userId);
      for (const g of sim.admin.grants('sage-accounting').grants)
        if (!g.revoked) sim.admin.revoke({ provider: 'sage-accounting', grantId: g.grantId });
      const handle = stack.client.workflow.getHandle(workflowId);
      const version = (await handle.query(statusQuery)).tokenVersion ?? 0;
      // What the sync does when Sage refuses a token: report the rejected version; the refresh then fails for good.
      await handle.executeUpdate(getAccessTokenUpdate, { args: [{ rejectedTokenVersion: version }] }).catch(() => {});
      await page.goto(`${base}/connections`);
      assert.equal(await row(tenant).getAttribute('data-state'), 'reauthorization_required');
      assert.match(
        (await row(tenant).locator('td').allInnerTexts())[1] ?? '',
        /Reauthorization required\s+refresh_token_invalid/,
      );
      await page.screenshot({ path: path.join(OUT_DIR, 'connections-page-reauthorization.png'), fullPage: true });

      sim.admin.nextConsent({ provider: 'sage-accounting', userId }); // the same Sage user consents again
      await row(tenant)
        .getByRole('link', { name: `Reconnect ${tenant} (sage-accounting)` })
        .click();
      await page.waitForURL(/\/oauth\/callback\?/);
      assert.equal(await page.locator('h1').innerText(), 'Connected to Sage');
      await page.goto(`${base}/connections`);
      assert.equal(await row(tenant).getAttribute('data-state'), 'connected');
    },
  );

  await t.test('/metrics counts the connections by state', async () => {
    assert.equal((await fetch(`${base}/metrics`)).status, 401, 'metrics name tenants: operator only');
    const text = await (await fetch(`${base}/metrics`, { headers: operatorAuth })).text();
    assert.match(text, /sage_sync_connections\{provider="sage-accounting",state="connected"\} 1/);
    assert.match(text, /sage_sync_connections\{provider="sage-accounting",state="awaiting_authorization"\} 1/);
    assert.match(
      text,
      new RegExp(
        `sage_sync_sync_lag_seconds\\{provider="sage-accounting",tenant_id="${tenant}",state="connected"\\} \\d`,
      ),
    );
  });

  await t.test(
    'Disconnect: the workflow ends, the row says Disconnected and offers Connect again; customers stay',
    async () => {
      await row(tenant)
        .getByRole('button', { name: `Disconnect ${tenant} (sage-accounting)` })
        .click();
      await page.waitForURL(/done=disconnect_requested/);
      assert.match(await page.getByRole('status').innerText(), /Disconnect requested/);
      await reloadUntil(
        'the row says disconnected',
        async () => (await row(tenant).getAttribute('data-state')) === 'disconnected',
        60_000,
      );
      assert.ok(
        await row(tenant)
          .getByRole('link', { name: `Connect ${tenant} (sage-accounting) again` })
          .isVisible(),
      );
      assert.equal(
        await row(tenant).getByRole('button', { name: /Sync/ }).count(),
        0,
        'no sync button on a disconnected connection',
      );
      const handle = stack.client.workflow.getHandle(workflowId);
      const final = (await stack.client.withDeadline(Date.now() + 60_000, () => handle.result())) as { state: string };
      assert.equal(final.state, 'disconnected', 'the workflow completed with its final status');
      assert.equal((await handle.describe()).status.name, 'COMPLETED');
      assert.equal(
        await stack.mongo.collection(COLLECTIONS.customers).countDocuments({ tenantId: tenant }),
        CUSTOMERS_PER_PARTITION * 2,
      );
    },
  );

  await t.test('a cross-site form post is refused, even with the browser login attached', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${base}/connections/sage-accounting/${denied}/disconnect`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          origin: 'https://evil.example',
          'sec-fetch-site': 'cross-site',
          ...headers,
        },
        body: 'revoke=true',
        redirect: 'manual',
      });
    assert.equal((await post({})).status, 401, 'anonymous');
    const basic = `Basic ${Buffer.from(`operator:${TEST_OPERATOR_TOKEN}`).toString('base64')}`;
    const res = await post({ authorization: basic });
    assert.equal(res.status, 403, 'the cached Basic login a browser would attach does not make it same-site');
    assert.equal(
      (await stack.client.workflow.getHandle(connectionWorkflowId('sage-accounting', denied)).query(statusQuery)).state,
      'awaiting_authorization',
    );
  });
});
