/** Temporal connections for clients (web, CLI, activities) and the worker, all with the shared encrypted data converter. */
import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config.js';
import { dataConverter } from './data-converter.js';

type TemporalConfig = Pick<Config, 'TEMPORAL_ADDRESS' | 'TEMPORAL_NAMESPACE' | 'encryptionKey' | 'oldEncryptionKeys'>;

export async function connectClient(config: TemporalConfig): Promise<Client> {
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS, connectTimeout: '10s' });
  return new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter: dataConverter(config) });
}
