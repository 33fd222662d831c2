// The memory tier keys its cache by a 31-bit hash of the key and keeps the key inside the entry; each key has
// two places (its hash under two seeds). Keys of the same hash must never answer for each other, hot keys of
// the same hash must all stay held (no two taking one place from each other on every read), a key is never
// held twice, and a key let go of because both places of another were taken leaves exactly as if evicted
// (bytes, horizon, fill rule).
import { describe, expect, it } from 'vitest';
import type { StoredEntry } from '../../src/domain/entry.js';
import { hashKey } from '../../src/domain/memory-tier.js';
import { tier } from '../support/memory-tier.js';

const SEED = 0x5eed;
const SECOND = 0x5ec0d;
const P = 0x01000193;
const OFFSET = 0x811c9dc5;
// P's inverse modulo 2^32 (each Newton step doubles the correct low bits), so FNV-1a can be run backwards.
let P_INVERSE = P;
for (let i = 0; i < 5; i++) P_INVERSE = Math.imul(P_INVERSE, 2 - Math.imul(P, P_INVERSE));

/** FNV-1a's 32-bit state after `text` from `seed`; hashKey is this shifted right by one. */
function state(text: string, seed: number): number {
  let h = (OFFSET ^ seed) | 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), P);
  return h;
}

/** The seed under which `key` hashes to `hash`: FNV-1a run backwards from it. */
function seedFor(key: string, hash: number): number {
  let h = hash << 1;
  for (let i = key.length - 1; i >= 0; i--) h = Math.imul(h, P_INVERSE) ^ key.charCodeAt(i);
  return h ^ OFFSET;
}

/**
 * `n` keys of one hash under `seed`: the prefix, two characters from U+0100-U+01FF, and a last character d.
 * Pairs whose FNV-1a state agrees in its high 16 bits are grouped (65 536 pairs: groups of three occur); d
 * then sets the low 16 bits alike, so the keys end in one state.
 */
function collidingKeys(n: number, seed = SEED, prefix = 'hot-'): string[] {
  const x = state(prefix, seed);
  const byHigh = new Map<number, string[]>();
  for (let c = 0x100; c < 0x200; c++) {
    for (let e = 0x100; e < 0x200; e++) {
      const h = Math.imul(Math.imul(x ^ c, P) ^ e, P);
      const d = (h & 0xffff) ^ 0x2d;
      if (d >= 0xd800 && d < 0xe000) continue; // a lone surrogate: keys stay well-formed text
      const group = byHigh.get(h >>> 16) ?? [];
      group.push(prefix + String.fromCharCode(c, e, d));
      if (group.length === n) return group;
      byHigh.set(h >>> 16, group);
    }
  }
  throw new Error(`no ${n} keys of one hash`);
}

const [a, b, c] = collidingKeys(3) as [string, string, string];
const set = (key: string, version: bigint, value = `${key}@${version}`, expiresAt: number | null = null) =>
  ({ op: 'set', key, version, value, expiresAt }) as const;
const stored = (version: bigint, value: string | null): StoredEntry => ({ version, value, expiresAt: null });
const seeded = (overrides: Parameters<typeof tier>[0] = {}) =>
  tier({ hashSeed: SEED, secondHashSeed: SECOND, ...overrides });
const bytesOf = (key: string, value: string) => 64 + Buffer.byteLength(key) + Buffer.byteLength(value);

/** Reads `keys` in turn `rounds` times as a reader does (a miss fetched from `store` and settled); the fetches. */
function readAlternately(t: ReturnType<typeof tier>['t'], store: Map<string, StoredEntry>, keys: string[]) {
  let fetches = 0;
  for (let round = 0; round < 100; round++) {
    for (const key of keys) {
      if (t.lookup(key) !== undefined) continue;
      fetches++;
      t.watch(key);
      expect(t.settle(key, store.get(key) ?? null).value).toBe(store.get(key)?.value);
    }
  }
  return fetches;
}

describe('memory tier: keys of the same hash', () => {
  it('the keys really collide under the first seed, and not under the second or another', () => {
    expect(new Set([a, b, c]).size).toBe(3);
    expect(new Set([a, b, c].map((k) => hashKey(k, SEED))).size).toBe(1);
    expect(new Set([a, b, c].map((k) => hashKey(k, SECOND))).size).toBe(3);
    expect(new Set([a, b, c].map((k) => hashKey(k, SEED + 1))).size).toBe(3);
    expect(hashKey(b, seedFor(b, hashKey(c, SEED)))).toBe(hashKey(c, SEED));
  });

  it('picks seeds of its own unless given them, so which keys collide cannot be known beforehand', () => {
    // Keys of one hash under seed 0 (where a constant or broken default would land) take both places of
    // each other if both seeds were 0; under random seeds they are held side by side.
    const keys = collidingKeys(3, 0);
    const { t } = tier();
    for (const key of keys) t.apply(set(key, 1n));
    expect(t.size).toBe(3);
    expect(t.collisions).toBe(0);
  });

  it('draws its first seed itself too: keys of one hash under seed 0 do not share a first place', () => {
    // Seen through recency: the lookup of a key held at its second place reads its first place too, which
    // marks the key held there as recently used.
    const [p, q] = collidingKeys(2, 0) as [string, string];
    const { t } = tier({ maxEntries: 3, secondHashSeed: SECOND });
    t.apply(set(p, 1n));
    t.apply(set(q, 1n));
    t.apply(set('x', 1n));
    expect(t.lookup(q)?.value).toBe(`${q}@1`);
    // The least recently used goes: p, unless q's lookup read p at a first place the two share.
    t.apply(set('y', 1n));
    expect(t.lookup(p)).toBeUndefined();
    expect(t.lookup('x')?.value).toBe('x@1');
  });

  it('hashes to V8 small integers: 31 bits, signed', () => {
    for (const key of [a, b, '', 'x', 'é€😀', 'k'.repeat(1000)]) {
      const h = hashKey(key, SEED);
      expect(Number.isInteger(h)).toBe(true);
      expect(h).toBeGreaterThanOrEqual(-(2 ** 30));
      expect(h).toBeLessThan(2 ** 30);
    }
  });

  it('is FNV-1a (32 bits) from the seed xored into its offset basis, shifted to 31 bits', () => {
    // The published FNV-1a test vectors, for text whose UTF-16 units are its bytes.
    expect(hashKey('', 0)).toBe(0x811c9dc5 >> 1);
    expect(hashKey('a', 0)).toBe(0xe40c292c >> 1);
    expect(hashKey('foobar', 0)).toBe(0xbf9cf968 >> 1);
    expect(hashKey('', 0x811c9dc5)).toBe(0);
  });

  it('keeps a hot pair and a hot triple of one hash held: read in turn, each is fetched once', () => {
    const store = new Map([a, b, c].map((k, i) => [k, stored(BigInt(i + 1), `${k}!`)]));
    for (const keys of [
      [a, b],
      [a, b, c],
    ]) {
      const { t } = seeded();
      expect(readAlternately(t, store, keys)).toBe(keys.length);
      expect(t.size).toBe(keys.length);
      expect(t.collisions).toBe(0);
      expect(t.bytes).toBe(keys.reduce((sum, k) => sum + bytesOf(k, `${k}!`), 0));
      expect(new Set(t.keys())).toEqual(new Set(keys));
    }
  });

  it('never answers a key with the entry of a longer key of the same hash that starts with it', () => {
    // FNV-1a's state h becomes (h ^ c) * P for a character c. Pick y with (y * P) ^ y below 2^16: then c =
    // (y * P) ^ y is a character, and from the state h = y * P the key of that one character leads back to
    // h. A seed that starts there makes '' and that character collide.
    let y = 1;
    while ((Math.imul(y, P) ^ y) >>> 0 >= 0x1_0000) y++;
    const ch = String.fromCharCode((Math.imul(y, P) ^ y) >>> 0);
    const seed = Math.imul(y, P) ^ OFFSET;
    expect(hashKey(ch, seed)).toBe(hashKey('', seed));
    const { t } = tier({ hashSeed: seed, secondHashSeed: SECOND });
    t.apply(set(ch, 1n));
    expect(t.lookup('')).toBeUndefined();
    t.apply(set('', 2n));
    expect(t.lookup('')?.value).toBe('@2');
    expect(t.lookup(ch)?.value).toBe(`${ch}@1`);
    expect(t.size).toBe(2);
  });

  it('never answers a key with the entry of another key of the same hash, at either place', () => {
    const { t } = seeded();
    t.apply(set(a, 1n));
    expect(t.lookup(b)).toBeUndefined();
    t.apply(set(b, 2n));
    expect(t.lookup(c)).toBeUndefined();
    expect(t.lookup(a)).toEqual({ value: `${a}@1`, version: 1n, origin: 'memory' });
    expect(t.lookup(b)).toEqual({ value: `${b}@2`, version: 2n, origin: 'memory' });
    expect([...t.keys()].sort()).toEqual([a, b].sort());
  });

  it('a key held at its second place is changed there: never a second copy, its bytes counted once', () => {
    const { t } = seeded({ maxBytes: 200 });
    t.apply(set(a, 1n));
    t.apply(set(b, 1n, 'b1'));
    t.apply(set(b, 2n, 'b2'));
    expect(t.size).toBe(2);
    expect(t.lookup(b)?.value).toBe('b2');
    // a leaves (its entry too large to hold): b's first place is free, and b's next change must still go
    // to the place b is held at, not to the free one beside an old copy.
    t.apply(set(a, 2n, 'x'.repeat(200)));
    expect(t.size).toBe(1);
    t.apply(set(b, 3n, 'b3'));
    expect(t.size).toBe(1);
    expect([...t.keys()]).toEqual([b]);
    expect(t.lookup(b)?.value).toBe('b3');
    expect(t.bytes).toBe(bytesOf(b, 'b3'));
    // Deleted and too large: b's own entry at its second place goes, not a, back at the first.
    t.apply(set(a, 3n, 'a3'));
    t.apply(set(b, 4n, 'y'.repeat(200)));
    expect([...t.keys()]).toEqual([a]);
    expect(t.bytes).toBe(bytesOf(a, 'a3'));
    expect(t.collisions).toBe(0);
  });

  it('a fill of one key is judged by its own versions, not by the other key held at its first place', () => {
    const { t } = seeded();
    t.apply(set(a, 100n));
    t.watch(b);
    // b's own newest is this fill: a's higher version must neither refuse it nor be answered for it.
    expect(t.settle(b, stored(3n, 'b3'))).toEqual({ value: 'b3', version: 3n, origin: 'store' });
    expect(t.lookup(b)?.value).toBe('b3');
    expect(t.lookup(a)?.value).toBe(`${a}@100`);
  });

  /** A tier whose second seed puts b's second place at `other`'s first place: a and other take both of b's. */
  function bothPlacesTaken(overrides: Parameters<typeof tier>[0] = {}) {
    const other = 'other';
    const second = seedFor(b, hashKey(other, SEED));
    const places = [hashKey(a, SEED), hashKey(other, SEED), hashKey(a, second)];
    expect(new Set(places).size).toBe(3);
    return { other, ...tier({ hashSeed: SEED, secondHashSeed: second, ...overrides }) };
  }

  it('with both its places taken, a key takes its first, letting go of that key as if evicted', () => {
    const { t, other } = bothPlacesTaken();
    t.apply(set(a, 10n, 'aaaa'));
    t.apply(set(other, 1n, 'o'));
    t.apply(set(b, 5n, 'b'));
    expect(t.collisions).toBe(1);
    expect(t.size).toBe(2);
    expect(t.lookup(a)).toBeUndefined();
    expect(t.lookup(b)?.value).toBe('b');
    expect(t.lookup(other)?.value).toBe('o');
    expect(t.bytes).toBe(bytesOf(other, 'o') + bytesOf(b, 'b'));
    // A late change of a, older than the v10 the tier let go of, must not come back as a's newest.
    t.apply(set(a, 8n));
    expect(t.lookup(a)).toBeUndefined();
    // a's own v10 again is taken, at a's second place (free): nothing is let go of, all three held.
    t.apply(set(a, 10n, 'again'));
    expect(t.collisions).toBe(1);
    expect(t.bytes).toBe(bytesOf(other, 'o') + bytesOf(b, 'b') + bytesOf(a, 'again'));
    const store = new Map([
      [a, stored(10n, 'again')],
      [b, stored(5n, 'b')],
      [other, stored(1n, 'o')],
    ]);
    expect(readAlternately(t, store, [a, b, other])).toBe(0);
  });

  it('with both its places taken, a key whose entry cannot be held (expired, too large) drops neither', () => {
    const { t, clock, other } = bothPlacesTaken({ maxBytes: 200 });
    t.apply(set(a, 1n, 'a'));
    t.apply(set(other, 1n, 'o'));
    t.apply(set(b, 2n, 'expired', clock.now()));
    t.apply(set(b, 3n, 'x'.repeat(200)));
    expect(t.lookup(a)?.value).toBe('a');
    expect(t.lookup(other)?.value).toBe('o');
    expect(t.lookup(b)).toBeUndefined();
    expect(t.collisions).toBe(0);
    expect(t.bytes).toBe(bytesOf(a, 'a') + bytesOf(other, 'o'));
  });

  it('keeps the floor of a fetch in flight when its key is let go of for another', () => {
    const { t, other } = bothPlacesTaken();
    t.watch(a);
    t.apply(set(a, 10n));
    t.apply(set(other, 1n));
    t.apply(set(b, 1n));
    // The fetch read a's v9 before v10 was applied: it must not be held, nor answered over b.
    expect(t.settle(a, stored(9n, 'a9'))).toEqual({ value: 'a9', version: 9n, origin: 'store' });
    expect(t.lookup(a)).toBeUndefined();
    expect(t.lookup(b)?.value).toBe(`${b}@1`);
    expect(t.lookup(other)?.value).toBe(`${other}@1`);
  });

  it('a key whose two places are one takes it from another key, which then goes to its second', () => {
    const second = seedFor(a, hashKey(a, SEED));
    expect(hashKey(b, second)).not.toBe(hashKey(a, SEED));
    const { t } = tier({ hashSeed: SEED, secondHashSeed: second });
    t.apply(set(b, 1n, 'b'));
    t.apply(set(a, 1n, 'a'));
    expect(t.collisions).toBe(1);
    expect([...t.keys()]).toEqual([a]);
    expect(t.bytes).toBe(bytesOf(a, 'a'));
    t.apply(set(b, 2n, 'b2'));
    expect(t.collisions).toBe(1);
    expect(t.lookup(a)?.value).toBe('a');
    expect(t.lookup(b)?.value).toBe('b2');
  });

  it('an entry of one key that cannot be held (already expired, too large) does not drop the other', () => {
    const { t, clock } = seeded({ maxBytes: 200 });
    t.apply(set(a, 1n));
    t.apply(set(b, 2n, 'expired', clock.now()));
    t.apply(set(b, 3n, 'x'.repeat(200)));
    expect(t.lookup(a)?.value).toBe(`${a}@1`);
    expect(t.lookup(b)).toBeUndefined();
    expect(t.collisions).toBe(0);
    expect(t.bytes).toBe(bytesOf(a, `${a}@1`));
  });

  it('an expired entry of one key is dropped by its own lookup only, at either place', () => {
    const { t, clock } = seeded({ ttlMs: 1000 });
    t.apply(set(a, 7n));
    t.apply(set(b, 3n, 'b', clock.now() + 500));
    clock.advance(501);
    expect(t.lookup(c)).toBeUndefined();
    expect(t.size).toBe(2);
    // b, at its second place, expired: dropped by its own lookup, a stays; b's version joins the horizon.
    expect(t.lookup(b)).toBeUndefined();
    expect(t.size).toBe(1);
    expect(t.lookup(a)?.value).toBe(`${a}@7`);
    clock.advance(500);
    expect(t.lookup(b)).toBeUndefined();
    expect(t.size).toBe(1);
    expect(t.lookup(a)).toBeUndefined();
    expect(t.size).toBe(0);
    t.apply(set(a, 6n));
    expect(t.lookup(a)).toBeUndefined();
    t.apply(set(b, 2n));
    expect(t.lookup(b)).toBeUndefined();
  });
});
