/**
 * Fuzzed Sage payloads for the fault suite: valid records from the simulator's own generators (both providers), each
 * given a unique `fuzz_seq` marker and then broken 0–3 ways — fields removed, mistyped, huge strings, nonsense dates
 * and decimals, keys MongoDB refuses, prototype-pollution keys, or the whole item replaced by a non-object. Seeded, so
 * a failing seed can be replayed (FUZZ_SEED). Every case is returned as its JSON round trip, as a client would see it.
 */
import { generatePartition } from '../../src/simulator/data.js';
import { prng } from '../../src/simulator/random.js';
import { contactFull } from '../../src/simulator/sage-accounting/contacts.js';
import { customerJson } from '../../src/simulator/sage200/customers.js';
import type { Provider } from '../../src/messages.js';

export interface FuzzCase {
  seq: number;
  provider: Provider;
  raw: unknown;
  mutations: string[];
}

const WRONG_VALUES: (() => unknown)[] = [
  () => 42,
  () => -1e308,
  () => 'not a value',
  () => '',
  () => true,
  () => null,
  () => [],
  () => [1, 'two', { three: 3 }],
  () => ({ nested: { deeper: ['x'] } }),
  () => Number.NaN,
  // U+0000 is valid JSON and valid in MongoDB but not in FerretDB/PostgreSQL (FUZZ_NO_NUL=1 leaves it out, to replay the rest).
  ...(process.env.FUZZ_NO_NUL ? [] : [() => '\u0000\u0007\u001b[31m']),
  () => '\u0007\u001b[31m',
  () => '💥'.repeat(50),
];

function hugeString(rnd: () => number): string {
  const size = 50_000 + Math.floor(rnd() * 450_000);
  return 'A'.repeat(size);
}

type Rec = Record<string, unknown>;

const MUTATORS: { name: string; apply(r: Rec, rnd: () => number, keys: string[]): Rec | unknown }[] = [
  { name: 'drop-field', apply: (r, rnd, keys) => (delete r[keys[Math.floor(rnd() * keys.length)]!], r) },
  { name: 'drop-id', apply: (r) => (delete r.id, r) },
  { name: 'drop-updated_at', apply: (r) => (delete r.updated_at, delete r.date_time_updated, r) },
  {
    name: 'mistype-field',
    apply: (r, rnd, keys) => (
      (r[keys[Math.floor(rnd() * keys.length)]!] = WRONG_VALUES[Math.floor(rnd() * WRONG_VALUES.length)]!()),
      r
    ),
  },
  { name: 'mistype-id', apply: (r, rnd) => ((r.id = WRONG_VALUES[Math.floor(rnd() * WRONG_VALUES.length)]!()), r) },
  { name: 'huge-string', apply: (r, rnd, keys) => ((r[keys[Math.floor(rnd() * keys.length)]!] = hugeString(rnd)), r) },
  { name: 'huge-name', apply: (r, rnd) => ((r.name = hugeString(rnd)), r) },
  {
    name: 'bad-date',
    apply: (r, rnd) => (
      (r.updated_at = ['yesterday', '2024-13-45T25:61:61Z', '0', '', '9999-99-99'][Math.floor(rnd() * 5)]),
      (r.date_time_updated = r.updated_at),
      r
    ),
  },
  {
    name: 'bad-decimal',
    apply: (r, rnd) => (
      (r.balance = ['abc', '1e400', 'NaN', '1,234.00', '--1', {}][Math.floor(rnd() * 6)]),
      (r.credit_limit = 'twelve'),
      r
    ),
  },
  { name: 'dollar-and-dot-keys', apply: (r) => ((r['$weird'] = { 'a.b': 1, $c: [{ 'd.e': 2 }] }), r) },
  {
    name: 'proto-keys',
    apply: (r) => (
      Object.defineProperty(r, '__proto__', {
        value: { polluted: true },
        enumerable: true,
        configurable: true,
        writable: true,
      }),
      (r['constructor'] = 'x'),
      r
    ),
  },
  { name: 'address-not-object', apply: (r) => ((r.main_address = 'Somewhere 1'), (r.address = 'Somewhere 1'), r) },
  { name: 'non-object-item', apply: (_r, rnd) => [null, 'a string', 12, [], true][Math.floor(rnd() * 5)] },
  {
    name: 'deep-nesting',
    apply: (r) => {
      let deep: Rec = {};
      const root = deep;
      for (let i = 0; i < 60; i++) deep = (deep.next = {}) as Rec;
      r.notes = root;
      return r;
    },
  },
];

/** `count` fuzz cases, alternating providers; about one in eight is left valid (the control group). */
export function fuzzCases(count: number, seed = Number(process.env.FUZZ_SEED ?? 8)): FuzzCase[] {
  const rnd = prng(seed);
  const acc = generatePartition('sage-accounting', 'fuzzbiz', seed, Math.min(count, 2000));
  const s200 = generatePartition('sage-200', '777', seed, Math.min(count, 2000));
  const accCustomers = acc.records.filter((r) => r.kind !== 'vendor');
  const out: FuzzCase[] = [];
  for (let seq = 0; seq < count; seq++) {
    const provider: Provider = seq % 2 === 0 ? 'sage-accounting' : 'sage-200';
    const base =
      provider === 'sage-accounting'
        ? contactFull(acc, accCustomers[seq % accCustomers.length]!)
        : customerJson(s200, s200.records[seq % s200.records.length]!, [
            'main_address',
            'contacts',
            'currency',
            'country_code',
          ]);
    // Unique ids and payloads: every case must be accounted for on its own.
    const rec: Rec = { ...structuredClone(base), fuzz_seq: seq };
    rec.id = provider === 'sage-accounting' ? `f${seq.toString(16).padStart(31, '0')}` : 5_000_000 + seq;
    const mutations: string[] = [];
    let raw: unknown = rec;
    const n = rnd() < 0.125 ? 0 : 1 + Math.floor(rnd() * 3);
    for (let k = 0; k < n && raw && typeof raw === 'object' && !Array.isArray(raw); k++) {
      const m = MUTATORS[Math.floor(rnd() * MUTATORS.length)]!;
      const keys = Object.keys(raw as Rec).filter((x) => x !== 'fuzz_seq');
      raw = m.apply(raw as Rec, rnd, keys);
      mutations.push(m.name);
    }
    // Sage payloads arrive as JSON: what a client holds is the parse of the serialised value (NaN → null, no undefined).
    out.push({ seq, provider, raw: JSON.parse(JSON.stringify(raw) ?? 'null') as unknown, mutations });
  }
  return out;
}

/** A JSON body cut short, as a proxy dropping the connection mid-body would leave it. */
export function truncatedJson(value: unknown): string {
  const s = JSON.stringify(value);
  return s.slice(0, Math.max(1, Math.floor(s.length / 2)));
}
