/**
 * The one HTTP client for every Sage call (got). It caps concurrent Sage requests across all tenants of this process
 * (Sage allows 150 per app), retries 429 and 5xx with backoff honouring `Retry-After`, times out, and turns failures into
 * the typed errors of `src/errors.ts`. OAuth token calls use `retry: 0`: a refresh must never be replayed blindly.
 */
import got, { HTTPError, RequestError, type Got, type OptionsInit, type Response } from 'got';
import { SageApiError, SageNetworkError } from '../errors.js';
import type { Provider } from '../messages.js';
import { Semaphore } from '../lib/semaphore.js';

export interface SageHttpOptions {
  maxConcurrency: number;
  /** Retries of 429/5xx inside one call, before the activity retry policy takes over. */
  retries?: number;
  timeoutMs?: number;
  /** Longest Retry-After we wait in-process; longer waits are left to the activity retry (nextRetryDelay). */
  maxRetryAfterMs?: number;
  onResponse?: (info: { provider: Provider; path: string; status: number; durationMs: number }) => void;
}

export interface SageHttp {
  got: Got;
  limiter: Semaphore;
  /** GET JSON with the concurrency cap and typed errors. */
  getJson<T>(
    provider: Provider,
    url: string,
    options?: OptionsInit,
  ): Promise<{ body: T; headers: Record<string, string | string[] | undefined> }>;
}

export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function createSageHttp(opts: SageHttpOptions): SageHttp {
  const limiter = new Semaphore(opts.maxConcurrency);
  const maxRetryAfterMs = opts.maxRetryAfterMs ?? 30_000;
  const instance = got.extend({
    timeout: { request: opts.timeoutMs ?? 60_000 },
    retry: {
      limit: opts.retries ?? 4,
      methods: ['GET'],
      statusCodes: [429, 500, 502, 503, 504],
      errorCodes: [
        'ETIMEDOUT',
        'ECONNRESET',
        'EADDRINUSE',
        'ECONNREFUSED',
        'EPIPE',
        'ENOTFOUND',
        'ENETUNREACH',
        'EAI_AGAIN',
      ],
      maxRetryAfter: maxRetryAfterMs,
      backoffLimit: 10_000,
    },
    headers: { accept: 'application/json', 'user-agent': 'sage-tenant-sync' },
  });

  async function getJson<T>(provider: Provider, url: string, options: OptionsInit = {}) {
    const path = new URL(url).pathname;
    return limiter.run(async () => {
      const started = performance.now();
      try {
        const res = (await instance.get(url, {
          ...options,
          responseType: 'text',
          resolveBodyOnly: false,
        } as OptionsInit)) as Response<string>;
        opts.onResponse?.({ provider, path, status: res.statusCode, durationMs: performance.now() - started });
        let body: T;
        try {
          body = JSON.parse(res.body) as T;
        } catch {
          throw new SageApiError(
            provider,
            res.statusCode,
            path,
            `malformed JSON body (${String(res.body).length} bytes)`,
          );
        }
        return { body, headers: res.headers };
      } catch (err) {
        if (err instanceof HTTPError) {
          const status = err.response.statusCode;
          opts.onResponse?.({ provider, path, status, durationMs: performance.now() - started });
          throw new SageApiError(
            provider,
            status,
            path,
            String(err.response.body ?? '').slice(0, 1000),
            parseRetryAfter(err.response.headers['retry-after']),
          );
        }
        if (err instanceof SageApiError) throw err;
        if (err instanceof RequestError) throw new SageNetworkError(provider, err.code, err.message);
        throw err;
      }
    });
  }

  return { got: instance, limiter, getJson };
}
