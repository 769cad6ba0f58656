/** The one data converter shared by the worker, every client, the replayer and the codec server. */
import type { DataConverter } from '@temporalio/common';
import type { Config } from '../config.js';
import { keyRing, type KeyRing } from '../lib/crypto.js';
import { EncryptionCodec } from './codec.js';

export function keyRingFromConfig(config: Pick<Config, 'encryptionKey' | 'oldEncryptionKeys'>): KeyRing {
  return keyRing(config.encryptionKey, config.oldEncryptionKeys);
}

export function dataConverter(config: Pick<Config, 'encryptionKey' | 'oldEncryptionKeys'>): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keyRingFromConfig(config))] };
}
