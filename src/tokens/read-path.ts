/**
 * The token read path's decision, as a pure function: may a caller take the stored token as it is, or must it ask the
 * connection workflow (`getAccessToken` update)? The store answers only when the workflow itself would answer "lease
 * this version": the same policy (`decideAccess`, refresh margin included) is applied to the stored token's times, so
 * the read path never decides to refresh and never hands out a token the workflow would have refreshed first.
 *
 * Why each condition sends the caller to the workflow instead:
 * - input the update's validator refuses: the caller gets the workflow's InvalidInput, not a token.
 * - `rejectedTokenVersion`: Sage said no; only the workflow decides whether that means one refresh (current version)
 *   or just the newer version (a stale one).
 * - no document / no `connected` mirror: not connected (awaiting consent, `reauthorization_required`, disconnected),
 *   or the mirror has not caught up with a fresh consent yet. The workflow answers with the precise reason.
 * - a refresh started from the stored version and not committed (`pendingRefresh` on that version): either one is in
 *   flight (the update joins it instead of racing it) or it failed, possibly definitively (a revoked grant leaves its
 *   marker behind; the token still looks valid but its grant is gone). The mirror says `reauthorization_required`
 *   only a moment later, so this marker is what closes that window.
 * - inside the refresh margin, or shorter than `minValidSeconds`: the workflow refreshes (once, for all callers).
 */
import { GetAccessTokenInput, type Provider } from '../messages.js';
import { decideAccess, type MachineState } from '../connection/machine.js';
import { metaOf, type TokenDoc } from './store.js';

export type ReadPathDecision = { use: 'store' } | { use: 'workflow'; why: string };

/** The fields of a token document the decision reads (the `_id`/sealed value is opened only after `use: 'store'`). */
export type TokenDocTimes = Pick<
  TokenDoc,
  | 'version'
  | 'accessTokenExpiresAt'
  | 'accessTokenLifetimeSec'
  | 'refreshTokenExpiresAt'
  | 'refreshTokenLifetimeSec'
  | 'obtainedAt'
> & {
  pendingRefresh?: { fromVersion: number } | null;
};

export function decideReadPath(
  doc: TokenDocTimes | null,
  connection: { state?: string | null } | null,
  now: number,
  req: { minValidSeconds?: number; rejectedTokenVersion?: number },
  conn: { workflowId: string; tenantId: string; provider: Provider },
): ReadPathDecision {
  // Input the workflow's validator would refuse (negative, fractional, huge) is refused there, with its InvalidInput.
  if (!GetAccessTokenInput.safeParse(req).success) return { use: 'workflow', why: 'invalid_input' };
  if (req.rejectedTokenVersion !== undefined) return { use: 'workflow', why: 'rejected_version' };
  if (!doc) return { use: 'workflow', why: 'no_token_doc' };
  if (connection?.state !== 'connected')
    return { use: 'workflow', why: `connection_${connection?.state ?? 'unknown'}` };
  if (doc.pendingRefresh && doc.pendingRefresh.fromVersion >= doc.version)
    return { use: 'workflow', why: 'refresh_started' };
  // The workflow's own rule, applied to the stored times (a minimal connected state: decideAccess reads only these).
  const state = {
    workflowId: conn.workflowId,
    tenantId: conn.tenantId,
    provider: conn.provider,
    state: 'connected',
    reason: null,
    token: metaOf(doc),
  } as unknown as MachineState;
  const d = decideAccess(state, now, req.minValidSeconds !== undefined ? { minValidSeconds: req.minValidSeconds } : {});
  return d.kind === 'lease' ? { use: 'store' } : { use: 'workflow', why: 'refresh_due' };
}
