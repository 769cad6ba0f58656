import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

const { recordSmoke } = proxyActivities<Activities>({ startToCloseTimeout: '30s' });

/** Proves the whole path (worker → activity → MongoDB) works; used by the smoke test and `npm start`'s self-check. */
export async function smoke(input: { id: string }): Promise<{ id: string; written: boolean }> {
  const written = await recordSmoke({ id: input.id });
  return { id: input.id, written };
}
