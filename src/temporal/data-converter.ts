/** The one data converter shared by the worker, every client, the replayer and the codec server. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import { codecKeyRingFromConfig, type KeyConfig } from '../lib/crypto.js';
import { EncryptionCodec } from './codec.js';

/** `failure-converter.cts` from source (tsx), `failure-converter.cjs` once compiled; also given to the workflow bundler. */
export const FAILURE_CONVERTER_PATH = fileURLToPath(
  new URL(
    `./failure-converter.${path.extname(fileURLToPath(import.meta.url)) === '.ts' ? 'cts' : 'cjs'}`,
    import.meta.url,
  ),
);

export function dataConverter(config: KeyConfig): DataConverter {
  return {
    payloadCodecs: [new EncryptionCodec(codecKeyRingFromConfig(config))],
    failureConverterPath: FAILURE_CONVERTER_PATH,
  };
}
