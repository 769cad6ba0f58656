import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { smoke } from '../../src/workflows/index.js';
import { testStack, uniqueName, type TestStack } from '../helpers/env.js';

let stack: TestStack;
before(async () => {
  stack = await testStack();
  await stack.startWorker();
});
after(async () => stack?.close());

test('a workflow runs an activity that writes to MongoDB, and its history is readable and encrypted', async () => {
  const id = uniqueName('smoke');
  const result = await stack.client.workflow.execute(smoke, {
    workflowId: id,
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ id }],
  });
  assert.deepEqual(result, { id, written: true });

  const doc = await stack.mongo.db.collection<{ _id: string; at: Date }>('smoke').findOne({ _id: id });
  assert.ok(doc, 'the activity wrote the document');
  assert.ok(doc.at instanceof Date);

  const history = await stack.client.workflow.getHandle(id).fetchHistory();
  const types = (history.events ?? []).map((e) => e.eventType);
  assert.ok(types.length >= 11, `expected a full history, got ${types.length} events`);
  // The workflow input is stored encrypted: no plaintext id in the raw history payload.
  const input = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  assert.equal(Buffer.from(input?.metadata?.encoding ?? []).toString(), 'binary/encrypted');
  assert.ok(
    !Buffer.from(input?.data ?? [])
      .toString('latin1')
      .includes(id),
    'input must not be stored in plaintext',
  );
});
