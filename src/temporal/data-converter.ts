/** The one data converter shared by the worker, every client, the replayer and the codec server. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import type { Config } from '../config.js';
import { keyRing, type KeyRing } from '../lib/crypto.js';
import { EncryptionCodec } from './codec.js';

/** `failure-converter.cts` from source (tsx), `failure-converter.cjs` once compiled; also given to the workflow bundler. */
export const FAILURE_CONVERTER_PATH = fileURLToPath(
  new URL(`./failure-converter.${path.extname(fileURLToPath(import.meta.url)) === '.ts' ? 'cts' : 'cjs'}`, import.meta.url),
);

export function keyRingFromConfig(config: Pick<Config, 'encryptionKey' | 'oldEncryptionKeys'>): KeyRing {
  return keyRing(config.encryptionKey, config.oldEncryptionKeys);
}

export function dataConverter(config: Pick<Config, 'encryptionKey' | 'oldEncryptionKeys'>): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keyRingFromConfig(config))], failureConverterPath: FAILURE_CONVERTER_PATH };
}
