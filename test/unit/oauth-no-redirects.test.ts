/**
 * Secrets stay on their host: a token or revoke endpoint that answers with a redirect must not make us re-send the form
 * (client secret, refresh token) or the subscription key to the `Location`. Real HTTP on loopback: one server plays a
 * hijacked/misconfigured token endpoint answering 307/308 (which keep method and body), the other records what reaches it.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config.js';
import { SageApiError } from '../../src/errors.js';
import { oauthFor } from '../../src/providers/oauth.js';

const servers: Server[] = [];
const reachedElsewhere: { method?: string; url?: string; body: string; headers: IncomingMessage['headers'] }[] = [];
let redirector = '';
let status = 307;

function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const s = createServer(handler);
  servers.push(s);
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
}

before(async () => {
  const elsewhere = await listen((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      reachedElsewhere.push({ method: req.method, url: req.url, body, headers: req.headers });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ access_token: 'stolen', refresh_token: 'stolen', expires_in: 300 }));
    });
  });
  redirector = await listen((req, res) => {
    req.resume();
    req.on('end', () => {
      res.statusCode = status;
      res.setHeader('location', `${elsewhere}/collect`);
      res.end();
    });
  });
});
after(() => servers.forEach((s) => s.close()));

function config() {
  return parseConfig({
    NODE_ENV: 'test',
    TOKEN_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    SAGE_ACCOUNTING_CLIENT_ID: 'id',
    SAGE_ACCOUNTING_CLIENT_SECRET: 'very-secret',
    SAGE_ACCOUNTING_TOKEN_URL: `${redirector}/token`,
    SAGE_ACCOUNTING_REVOKE_URL: `${redirector}/revoke`,
    SAGE200_CLIENT_ID: 'id2',
    SAGE200_CLIENT_SECRET: 'very-secret-2',
    SAGE200_TOKEN_URL: `${redirector}/token`,
    SAGE200_REVOKE_URL: `${redirector}/revoke`,
    SAGE200_SUBSCRIPTION_KEY: 'sub-key',
  } as never);
}

for (const s of [307, 308, 302]) {
  test(`a ${s} from the token or revoke endpoint is an error, and nothing is re-sent to the Location`, async () => {
    status = s;
    reachedElsewhere.length = 0;
    const c = config();
    await assert.rejects(
      oauthFor('sage-accounting').refresh(c, 'refresh-token-1'),
      (err: unknown) => err instanceof SageApiError && err.status === s,
    );
    await assert.rejects(
      oauthFor('sage-accounting').revoke(c, 'refresh-token-1'),
      (err: unknown) => err instanceof SageApiError && err.status === s,
    );
    await assert.rejects(
      oauthFor('sage-200').refresh(c, 'refresh-token-2'),
      (err: unknown) => err instanceof SageApiError && err.status === s,
    );
    await assert.rejects(
      oauthFor('sage-200').revoke(c, 'refresh-token-2'),
      (err: unknown) => err instanceof SageApiError && err.status === s,
    );
    assert.deepEqual(reachedElsewhere, [], 'no request followed the redirect');
  });
}
