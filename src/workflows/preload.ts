// Loaded once per worker into the reused V8 context (bundle option `preloadModules`, src/worker.ts): zod is then shared by
// every workflow instead of being evaluated again, with its ~150 schema classes, for each cached execution (issue 14).
// Only stateless library code belongs here: a preloaded module is deep-frozen and shared by all workflows.
import * as z from 'zod';

export const sharedZod = z;
