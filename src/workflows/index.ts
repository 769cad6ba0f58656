// Every workflow the worker runs is exported from here: the worker loads this module by path into its sandbox.
export * from './notify-changes.js';
export * from './sync-customers.js';
export * from './tenant-connection/workflow.js';
