/**
 * Small deterministic randomness: a 32-bit string hash and a seeded PRNG. Everything the simulator generates derives
 * from the seed through these, so the same seed always yields the same users, businesses and customers.
 */

/** cyrb53-style hash folded to 32 bits: fast, good enough spread for seeding. */
export function hash32(...parts: (string | number)[]): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  const s = parts.join('\u0001');
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h1 ^ h2) >>> 0;
}

/** mulberry32: returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)] as T;
}

export function intBetween(rnd: () => number, min: number, max: number): number {
  return min + Math.floor(rnd() * (max - min + 1));
}

/** `n` hex characters from the PRNG (e.g. 32 for a Sage Accounting id). */
export function hex(rnd: () => number, n: number): string {
  let out = '';
  while (out.length < n)
    out += Math.floor(rnd() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
  return out.slice(0, n);
}

/** A GUID-shaped string (Sage 200 site ids). */
export function guid(rnd: () => number): string {
  const h = hex(rnd, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
