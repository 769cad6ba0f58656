import { loadConfig } from '../config.js';
import { logger } from '../lib/logger.js';
import { connectMongo, ensureIndexes } from '../lib/mongo.js';
import { connectClient } from '../temporal/client.js';
import { buildServer } from './server.js';

async function main(): Promise<void> {
  const config = loadConfig({ web: true });
  const log = logger().child({ component: 'web' });
  const mongo = await connectMongo(config.MONGODB_URI, config.MONGODB_DB, { appName: 'sage-sync-web' });
  await ensureIndexes(mongo, (m) => log.warn(m));
  const client = await connectClient(config);
  const app = await buildServer({ config, client, mongo, log });
  await app.listen({ port: config.PORT, host: config.WEB_HOST });
  log.info({ url: config.PUBLIC_BASE_URL, host: config.WEB_HOST, port: config.PORT }, 'web server listening');
  const stop = async () => {
    await app.close();
    await client.connection.close();
    await mongo.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  logger().fatal({ err }, 'web server failed');
  process.exit(1);
});
