/** A minimal Sage client for the simulator tests, written from Sage's documentation (fetch, no redirects followed). */
import assert from 'node:assert/strict';
import type { RunningSimulator } from '../../../src/simulator/server.js';

export const REDIRECT = 'http://localhost:3000/oauth/callback';

export function form(body: Record<string, string>): { method: 'POST'; headers: Record<string, string>; body: string } {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(body).toString(),
  };
}

export async function json<T = any>(res: Response): Promise<T> {
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** GET the consent URL and return the callback's query parameters (asserting a 302 to the registered redirect). */
export async function consent(url: string): Promise<URLSearchParams> {
  const res = await fetch(url, { redirect: 'manual' });
  assert.equal(res.status, 302, `consent answered ${res.status}: ${await res.text()}`);
  const location = new URL(res.headers.get('location')!);
  assert.equal(`${location.origin}${location.pathname}`, REDIRECT);
  return location.searchParams;
}

export function accountingAuthUrl(sim: RunningSimulator, params: Record<string, string | undefined> = {}): string {
  const u = new URL(sim.env.SAGE_ACCOUNTING_AUTH_URL!);
  const all: Record<string, string | undefined> = {
    client_id: sim.apps.sageAccounting.clientId,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'full_access',
    state: 'st-123',
    ...params,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

export function sage200AuthUrl(sim: RunningSimulator, params: Record<string, string | undefined> = {}): string {
  const u = new URL(sim.env.SAGE200_AUTH_URL!);
  const all: Record<string, string | undefined> = {
    audience: 's200ukipd/sage200',
    client_id: sim.apps.sage200.clientId,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid profile email offline_access',
    state: 'st-200',
    ...params,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

export async function accountingToken(sim: RunningSimulator, body: Record<string, string>): Promise<Response> {
  return fetch(
    sim.env.SAGE_ACCOUNTING_TOKEN_URL!,
    form({ client_id: sim.apps.sageAccounting.clientId, client_secret: sim.apps.sageAccounting.clientSecret, ...body }),
  );
}

export async function sage200Token(sim: RunningSimulator, body: Record<string, string>): Promise<Response> {
  return fetch(
    sim.env.SAGE200_TOKEN_URL!,
    form({ client_id: sim.apps.sage200.clientId, client_secret: sim.apps.sage200.clientSecret, ...body }),
  );
}

export async function admin<T = any>(sim: RunningSimulator, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${sim.url}/__admin${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const out = await json<T>(res);
  assert.ok(res.ok, `admin ${method} ${path} → ${res.status} ${JSON.stringify(out)}`);
  return out;
}
