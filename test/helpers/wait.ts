/**
 * The test suite's two ways of waiting for something that happens asynchronously (one home, issue 16):
 * - `eventually(fn)`: retry `fn` until it resolves; while the condition does not hold it throws (an assertion, a client
 *   call refused while a server restarts). At the deadline its last error is rethrown, so the failure names what failed.
 * - `waitUntil(what, fn)`: poll `fn` until it returns a truthy value and return that value; an error thrown by `fn`
 *   fails at once. At the deadline the error says what was awaited.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** How long to keep trying. */
  timeoutMs?: number;
  /** Pause between tries. */
  intervalMs?: number;
}

export async function eventually<T>(fn: () => Promise<T>, opts: WaitOptions = {}): Promise<T> {
  const { timeoutMs = 20_000, intervalMs = 200 } = opts;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(intervalMs);
    }
  }
}

export async function waitUntil<T>(
  what: string | (() => string | Promise<string>),
  fn: () => Promise<T | undefined | null | false>,
  opts: WaitOptions = {},
): Promise<T> {
  const { timeoutMs = 60_000, intervalMs = 200 } = opts;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${typeof what === 'function' ? await what() : what}`);
    await sleep(intervalMs);
  }
}
