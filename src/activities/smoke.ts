import type { ActivityDeps } from './deps.js';

export function createSmokeActivities(deps: ActivityDeps) {
  return {
    async recordSmoke(input: { id: string }): Promise<boolean> {
      const res = await deps.mongo.db
        .collection<{ _id: string; at: Date }>('smoke')
        .updateOne({ _id: input.id }, { $set: { at: new Date() } }, { upsert: true });
      return res.acknowledged;
    },
  };
}
