/**
 * What every command needs: config (validated as for the services), a Temporal client with the shared encrypted data
 * converter, and MongoDB. Connections are opened lazily and closed by `close()`, so `--help` needs no servers.
 */
import type { Client } from '@temporalio/client';
import { ConfigError, parseConfig, type Config } from '../config.js';
import { connectMongo, type Mongo } from '../lib/mongo.js';
import { connectClient } from '../temporal/client.js';
import { CliExit, EXIT } from './exit-codes.js';

export interface CliContext {
  config: Config;
  client(): Promise<Client>;
  mongo(): Promise<Mongo>;
  /** Both, for helpers that take `{client, mongo}`. */
  deps(): Promise<{ client: Client; mongo: Mongo }>;
  close(): Promise<void>;
}

export function createContext(env: NodeJS.ProcessEnv = process.env): CliContext {
  let config: Config;
  try {
    config = parseConfig(env);
  } catch (err) {
    if (err instanceof ConfigError)
      throw new CliExit(EXIT.config, err.issues.map((i) => `config error: ${i.variable}: ${i.message}`).join('\n'));
    throw err;
  }
  let client: Promise<Client> | undefined;
  let mongo: Promise<Mongo> | undefined;
  const ctx: CliContext = {
    config,
    client: () =>
      (client ??= connectClient(config).catch((err: Error) => {
        throw new CliExit(EXIT.failure, `cannot reach Temporal at ${config.TEMPORAL_ADDRESS}: ${err.message}`);
      })),
    mongo: () =>
      (mongo ??= connectMongo(config.MONGODB_URI, config.MONGODB_DB, { appName: 'sage-sync-cli' }).catch(
        (err: Error) => {
          throw new CliExit(EXIT.failure, `cannot reach MongoDB at ${config.MONGODB_URI}: ${err.message}`);
        },
      )),
    deps: async () => ({ client: await ctx.client(), mongo: await ctx.mongo() }),
    async close() {
      await Promise.allSettled([client?.then((c) => c.connection.close()), mongo?.then((m) => m.close())]);
    },
  };
  return ctx;
}
