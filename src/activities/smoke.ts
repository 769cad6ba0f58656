import type { ActivityDeps } from './deps.js';
import { mappingFailures } from '../errors.js';

export function createSmokeActivities(deps: ActivityDeps) {
  return mappingFailures({
    async recordSmoke(input: { id: string }): Promise<boolean> {
      const res = await deps.mongo.db
        .collection<{ _id: string; at: Date }>('smoke')
        .updateOne({ _id: input.id }, { $set: { at: new Date() } }, { upsert: true });
      return res.acknowledged;
    },
  });
}
