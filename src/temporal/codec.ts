/**
 * Temporal payload codec: encrypts every payload (workflow inputs, results, update arguments, heartbeat details) with
 * AES-256-GCM, as in temporalio/samples-typescript `encryption/`. The key id rides in the payload metadata so keys can
 * rotate: old payloads stay readable while TOKEN_ENCRYPTION_OLD_KEYS lists their key.
 */
import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';

const { temporal } = proto;
import { open, seal, type KeyRing } from '../lib/crypto.js';

export const ENCODING = 'binary/encrypted';
const METADATA_ENCODING_KEY = 'encoding';
const METADATA_KEY_ID = 'encryption-key-id';

const te = new TextEncoder();
const td = new TextDecoder();

export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly ring: KeyRing) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const plain = Buffer.from(temporal.api.common.v1.Payload.encode(payload).finish());
      const { keyId, data } = seal(this.ring, plain);
      return {
        metadata: { [METADATA_ENCODING_KEY]: te.encode(ENCODING), [METADATA_KEY_ID]: te.encode(keyId) },
        data: new Uint8Array(data),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const enc = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!enc || td.decode(enc) !== ENCODING) return payload;
      const keyIdBytes = payload.metadata?.[METADATA_KEY_ID];
      if (!keyIdBytes || !payload.data) throw new Error('encrypted payload without key id or data');
      const plain = open(this.ring, td.decode(keyIdBytes), Buffer.from(payload.data));
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}
