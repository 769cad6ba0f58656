import { createChangeActivities } from './changes.js';
import { createConnectionActivities } from './connection.js';
import { createConsentActivities } from './consent.js';
import type { ActivityDeps } from './deps.js';
import { createNotifyActivities } from './notify.js';
import { createScheduleActivities } from './schedule.js';
import { createSyncActivities } from './sync.js';
import { createTokenActivities } from './tokens.js';

export type { ActivityDeps } from './deps.js';

/**
 * Builds every activity with its dependencies injected (temporalio/samples-typescript `activities-dependency-injection`).
 * Each factory wraps its activities in `mappingFailures` (src/errors.ts), so every activity throws through
 * `toActivityFailure`: the one place that turns our typed errors into Temporal failures.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createScheduleActivities(deps),
    ...createTokenActivities(deps),
    ...createConsentActivities(deps),
    ...createConnectionActivities(deps),
    ...createNotifyActivities(deps),
    ...createSyncActivities(deps),
    ...createChangeActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
