/**
 * Records the histories replayed by test/integration/replay.test.ts: one tenant through consent, refreshes, a revoked
 * grant, re-consent, a syncReport, continue-as-new and disconnect; plus one that failed on bad input.
 * Run when the workflow changes on purpose: `node --import tsx test/helpers/record-token-histories.ts`
 * (needs the local Temporal + MongoDB-wire servers). Payloads stay encrypted with the fixed test key.
 * `RECORD_AS=tenant-connection-<name>` records beside the existing files instead of over them, so histories of older
 * workflow code keep being replayed too (e.g. `tenant-connection-reconsent-*`: the staged re-consent path).
 * `RECORD_BAD_INPUT=0` skips the bad-input history.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import proto from '@temporalio/proto';
import { connectionWorkflowId, disconnectSignal, syncReportSignal } from '../../src/messages.js';
import { keyRingFromConfig } from '../../src/lib/crypto.js';
import { acquireAccessToken } from '../../src/tokens/access.js';
import { openTokens, readTokenDoc } from '../../src/tokens/store.js';
import { tenantConnection } from '../../src/workflows/index.js';
import { succeededSummary } from './summaries.js';
import { tokenHarness } from './token-harness.js';

const out = path.join(import.meta.dirname, '..', 'histories');
const prefix = process.env.RECORD_AS ?? 'tenant-connection';
if (!prefix.startsWith('tenant-connection'))
  throw new Error('RECORD_AS must start with tenant-connection (the replay test picks files by that prefix)');
/**
 * Saved as JSON wrapping the binary History protobuf (base64). Why not the CLI's proto-JSON: with SDK 1.24.0,
 * `historyFromJSON` mixes protobufjs 8 (its protojson ext) with @temporalio/proto's protobufjs 7 types and throws
 * "type must be a Type"; the binary form needs no conversion. Payloads stay encrypted with the test key.
 */
async function show(workflowId: string, runId: string): Promise<string> {
  const history = await h.stack.client.workflow.getHandle(workflowId, runId).fetchHistory();
  const data = Buffer.from(proto.temporal.api.history.v1.History.encode(history).finish()).toString('base64');
  return `${JSON.stringify({ workflowId, runId, format: 'temporal.api.history.v1.History+base64', events: history.events?.length ?? 0, data }, null, 1)}\n`;
}
const h = await tokenHarness();
try {
  const deps = { client: h.stack.client, mongo: h.stack.mongo, config: h.stack.config };
  const tenantId = `replay-${Date.now().toString(36)}`;
  const id = connectionWorkflowId('sage-accounting', tenantId);
  await h.start({ tenantId, provider: 'sage-accounting', __maxHistoryEvents: 150 } as never);
  const handle = h.stack.client.workflow.getHandle(id);
  const firstRunId = (await handle.describe()).runId;
  if ((await h.consent(tenantId, 'sage-accounting')).status !== 200) throw new Error('consent failed');
  const st = await h.status(tenantId, 'sage-accounting');
  await handle.signal(syncReportSignal, {
    partitionId: st.partitions[0]!.id,
    summary: succeededSummary(),
  });
  let v = 1;
  for (let i = 0; i < 3; i++)
    v = (await acquireAccessToken(deps, { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: v }))
      .tokenVersion;
  const doc = await readTokenDoc(h.stack.mongo, id);
  const { refreshToken } = openTokens(keyRingFromConfig(h.stack.config), doc!);
  const grantId = h.sim.state.tokens.get(refreshToken!)?.grantId;
  const userId = h.sim.admin.grants('sage-accounting').grants.find((g) => g.grantId === grantId)?.userId;
  h.sim.admin.revoke({ provider: 'sage-accounting', refreshToken: refreshToken! });
  await acquireAccessToken(deps, { tenantId, provider: 'sage-accounting' }, { rejectedTokenVersion: v }).catch(
    () => {},
  );
  const re = await h.waitForStatus(
    tenantId,
    'sage-accounting',
    (s) => s.state === 'reauthorization_required' && s.authorizationUrl !== null,
  );
  h.sim.admin.nextConsent({ provider: 'sage-accounting', userId: userId! });
  await h.callback(await h.followConsent(re.authorizationUrl!));
  for (let i = 0; i < 10; i++)
    v = (
      await acquireAccessToken(
        deps,
        { tenantId, provider: 'sage-accounting' },
        { rejectedTokenVersion: (await h.status(tenantId, 'sage-accounting')).tokenVersion! },
      )
    ).tokenVersion;
  await handle.signal(disconnectSignal, {});
  await handle.result();
  const runs: { runId: string; startTime: Date }[] = [];
  for await (const wf of h.stack.client.workflow.list({ query: `WorkflowId = "${id}"` }))
    runs.push({ runId: wf.runId, startTime: wf.startTime });
  runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  if (!runs.some((r) => r.runId === firstRunId)) console.warn('visibility does not list the first run yet');
  let n = 0;
  for (const { runId } of runs) {
    writeFileSync(path.join(out, `${prefix}-run${++n}.json`), await show(id, runId));
  }
  if (process.env.RECORD_BAD_INPUT !== '0') {
    const badTenant = `replay-bad-${Date.now().toString(36)}`;
    const badId = connectionWorkflowId('sage-200', badTenant);
    await h.stack.client.workflow
      .execute(tenantConnection, {
        workflowId: badId,
        taskQueue: h.stack.config.TEMPORAL_TASK_QUEUE,
        args: [{ tenantId: badTenant, provider: 'sage-200', sync: { intervalMinutes: -1 } }],
      })
      .catch(() => {});
    const badRun = (await h.stack.client.workflow.getHandle(badId).describe()).runId;
    writeFileSync(path.join(out, `${prefix}-bad-input.json`), await show(badId, badRun));
    n++;
  }
  console.log(`recorded ${n} histories into ${out}`);
} finally {
  await h.close();
}
