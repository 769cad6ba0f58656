/**
 * Named points inside the token rotation where the fault tests kill the worker process for real (SIGKILL, no cleanup),
 * to prove that a crash anywhere leaves the tenant connected without reusing a refresh token. Active only when
 * NODE_ENV=test and TEST_CRASH_AT names the point; a no-op otherwise.
 */
import type { Config } from '../config.js';

export const CRASH_POINTS = [
  /** After the write-ahead marker, before Sage is called. */
  'refresh:before-sage',
  /**
   * Sage rotated the tokens and answered; nothing stored yet, not even sealed in heartbeat details. The one window no
   * client can close (see README): the answer dies with the process.
   */
  'refresh:after-sage',
  /** The new version is stored; the activity has not reported back to the workflow. */
  'refresh:after-store',
  /** Code exchanged and stored; the workflow has not heard back. */
  'exchange:after-store',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export function crashPoint(config: Pick<Config, 'NODE_ENV' | 'TEST_CRASH_AT'>, point: CrashPoint): void {
  if (config.NODE_ENV !== 'test' || !config.TEST_CRASH_AT) return;
  if (
    config.TEST_CRASH_AT.split(',')
      .map((s) => s.trim())
      .includes(point)
  ) {
    process.stderr.write(`TEST_CRASH_AT: killing worker process ${process.pid} at ${point}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
