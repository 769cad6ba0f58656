/** The one data converter shared by the worker, every client, the replayer and the codec server. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import type { Config } from '../config.js';
import { derivedKeyRing, type KeyRing } from '../lib/crypto.js';
import { EncryptionCodec } from './codec.js';

/** `failure-converter.cts` from source (tsx), `failure-converter.cjs` once compiled; also given to the workflow bundler. */
export const FAILURE_CONVERTER_PATH = fileURLToPath(
  new URL(
    `./failure-converter.${path.extname(fileURLToPath(import.meta.url)) === '.ts' ? 'cts' : 'cjs'}`,
    import.meta.url,
  ),
);

type KeyConfig = Pick<Config, 'encryptionKey' | 'oldEncryptionKeys'>;

/** The token store's keys (sealed tokens at rest, and refresh answers carried in heartbeat details). */
export function keyRingFromConfig(config: KeyConfig): KeyRing {
  return derivedKeyRing('tokenStore', config.encryptionKey, config.oldEncryptionKeys);
}

/** The payload codec's keys (worker, clients, replayer, codec server): separate from the token store's. */
export function codecKeyRingFromConfig(config: KeyConfig): KeyRing {
  return derivedKeyRing('payloadCodec', config.encryptionKey, config.oldEncryptionKeys);
}

export function dataConverter(config: KeyConfig): DataConverter {
  return {
    payloadCodecs: [new EncryptionCodec(codecKeyRingFromConfig(config))],
    failureConverterPath: FAILURE_CONVERTER_PATH,
  };
}
