/**
 * Keys: the token store and the payload codec each seal with their own key derived from TOKEN_ENCRYPTION_KEY (HKDF),
 * under new key ids, and both still open what was sealed with the raw key before (stored tokens, saved histories).
 * `TOKEN_ENCRYPTION_OLD_KEYS` takes the documented `keyId:base64` form (and bare base64).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keyIdFor, parseConfig } from '../../src/config.js';
import {
  codecKeyRingFromConfig,
  DecryptionError,
  keyRing,
  keyRingFromConfig,
  open,
  seal,
} from '../../src/lib/crypto.js';
import { EncryptionCodec } from '../../src/temporal/codec.js';
import { openTokens, sealTokens } from '../../src/tokens/store.js';

const RAW = Buffer.alloc(32, 9);
const OLD = Buffer.alloc(32, 4);
const config = () =>
  parseConfig({
    TOKEN_ENCRYPTION_KEY: RAW.toString('base64'),
    TOKEN_ENCRYPTION_OLD_KEYS: `legacy-1:${OLD.toString('base64')}`,
  });

test('the token store and the codec seal with different derived keys under new key ids, neither the raw key', () => {
  const c = config();
  const store = keyRingFromConfig(c);
  const codec = codecKeyRingFromConfig(c);
  assert.notEqual(store.current.id, codec.current.id);
  assert.notEqual(store.current.id, keyIdFor(RAW));
  assert.notEqual(codec.current.id, keyIdFor(RAW));
  assert.ok(!store.current.key.equals(codec.current.key));
  assert.ok(!store.current.key.equals(RAW) && !codec.current.key.equals(RAW));
  // A value sealed for one purpose does not open with the other purpose's ring (the ids are not even known there).
  const sealed = seal(store, Buffer.from('x'));
  assert.throws(() => open(codec, sealed.keyId, sealed.data), DecryptionError);
});

test('tokens and payloads sealed with the raw key before derivation still open', async () => {
  const c = config();
  const legacy = keyRing({ id: keyIdFor(RAW), key: RAW });
  const doc = {
    _id: 'sage-connection:sage-accounting:t',
    version: 3,
    ...sealTokens(legacy, 'sage-connection:sage-accounting:t', 3, { accessToken: 'a-tok', refreshToken: 'r-tok' }),
  };
  assert.deepEqual(openTokens(keyRingFromConfig(c), doc), { accessToken: 'a-tok', refreshToken: 'r-tok' });
  const payload = {
    metadata: { encoding: new TextEncoder().encode('json/plain') },
    data: new TextEncoder().encode('"hello"'),
  };
  const [old] = await new EncryptionCodec(legacy).encode([payload]);
  const [back] = await new EncryptionCodec(codecKeyRingFromConfig(c)).decode([old!]);
  assert.equal(new TextDecoder().decode(back!.data!), '"hello"');
  // New payloads are sealed under the codec's derived key id.
  const [fresh] = await new EncryptionCodec(codecKeyRingFromConfig(c)).encode([payload]);
  assert.equal(new TextDecoder().decode(fresh!.metadata!['encryption-key-id']!), codecKeyRingFromConfig(c).current.id);
});

test('TOKEN_ENCRYPTION_OLD_KEYS accepts the documented keyId:base64 form and bare base64; data of an old key opens', () => {
  const c = config();
  const ids = c.oldEncryptionKeys.map((k) => k.id);
  assert.ok(ids.includes('legacy-1'), JSON.stringify(ids));
  assert.ok(ids.includes(keyIdFor(OLD)));
  assert.ok(c.oldEncryptionKeys.every((k) => k.key.equals(OLD)));
  const bare = parseConfig({
    TOKEN_ENCRYPTION_KEY: RAW.toString('base64'),
    TOKEN_ENCRYPTION_OLD_KEYS: OLD.toString('base64'),
  });
  assert.deepEqual(
    bare.oldEncryptionKeys.map((k) => k.id),
    [keyIdFor(OLD)],
  );
  // Sealed under the old key (raw, as before derivation) with its documented id: opens.
  const sealed = seal(keyRing({ id: 'legacy-1', key: OLD }), Buffer.from('old secret'));
  assert.equal(open(keyRingFromConfig(c), sealed.keyId, sealed.data).toString(), 'old secret');
  assert.throws(() =>
    parseConfig({
      TOKEN_ENCRYPTION_KEY: RAW.toString('base64'),
      TOKEN_ENCRYPTION_OLD_KEYS: `id:${Buffer.alloc(8).toString('base64')}`,
    }),
  );
});
