import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Mongo } from '../lib/mongo.js';

/** What activities need from the outside world; the worker builds it once, tests build their own. */
export interface ActivityDeps {
  config: Config;
  mongo: Mongo;
  /** Temporal client, for activities that talk to other workflows or schedules. */
  client: Client;
  log: Logger;
}
