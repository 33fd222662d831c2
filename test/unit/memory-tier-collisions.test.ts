// The memory tier keys its cache by a 31-bit hash of the key and keeps the key inside the entry. Two keys of
// the same hash share one place: neither may ever answer for the other, the one written last takes the place,
// and the one it replaces is let go of exactly as if evicted (bytes, horizon, fill rule).
import { describe, expect, it } from 'vitest';
import type { StoredEntry } from '../../src/domain/entry.js';
import { hashKey } from '../../src/domain/memory-tier.js';
import { tier } from '../support/memory-tier.js';

const SEED = 0x5eed;

/** Two different keys with the same hash under `seed`, found by a birthday search (about 2^16 keys). */
function collidingPair(seed = SEED): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const key = `key-${i}`;
    const other = seen.get(hashKey(key, seed));
    if (other !== undefined) return [other, key];
    seen.set(hashKey(key, seed), key);
  }
}

const [a, b] = collidingPair();
const set = (key: string, version: bigint, value = `${key}@${version}`, expiresAt: number | null = null) =>
  ({ op: 'set', key, version, value, expiresAt }) as const;
const stored = (version: bigint, value: string | null): StoredEntry => ({ version, value, expiresAt: null });
const seeded = (overrides: Parameters<typeof tier>[0] = {}) => tier({ hashSeed: SEED, ...overrides });

describe('memory tier: keys of the same hash', () => {
  it('the pair really collides under this seed, and not under another', () => {
    expect(a).not.toBe(b);
    expect(hashKey(a, SEED)).toBe(hashKey(b, SEED));
    expect(hashKey(a, SEED + 1)).not.toBe(hashKey(b, SEED + 1));
  });

  it('picks a seed of its own unless given one, so which keys collide cannot be known beforehand', () => {
    // A pair that collides under seed 0 (where a constant or broken default would land) is, under a random
    // seed, two keys held side by side (they collide again with a chance of 2^-31).
    const [c, d] = collidingPair(0);
    const { t } = tier();
    t.apply(set(c, 1n));
    t.apply(set(d, 1n));
    expect(t.size).toBe(2);
    expect(t.collisions).toBe(0);
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

  it('never answers a key with the entry of a longer key of the same hash that starts with it', () => {
    // FNV-1a's state h becomes (h ^ c) * P for a character c. Pick y with (y * P) ^ y below 2^16: then c =
    // (y * P) ^ y is a character, and from the state h = y * P the key of that one character leads back to
    // h. A seed that starts there makes '' and that character collide.
    const P = 0x01000193;
    let y = 1;
    while ((Math.imul(y, P) ^ y) >>> 0 >= 0x1_0000) y++;
    const c = String.fromCharCode((Math.imul(y, P) ^ y) >>> 0);
    const seed = Math.imul(y, P) ^ 0x811c9dc5;
    expect(hashKey(c, seed)).toBe(hashKey('', seed));
    const { t } = tier({ hashSeed: seed });
    t.apply(set(c, 1n));
    expect(t.lookup('')).toBeUndefined();
    t.apply(set('', 2n));
    expect(t.lookup(c)).toBeUndefined();
    expect(t.lookup('')?.value).toBe('@2');
  });

  it('never answers a key with the entry of another key of the same hash', () => {
    const { t } = seeded();
    t.apply(set(a, 1n));
    expect(t.lookup(b)).toBeUndefined();
    expect(t.lookup(a)?.value).toBe(`${a}@1`);
    t.apply(set(b, 2n));
    expect(t.lookup(a)).toBeUndefined();
    expect(t.lookup(b)).toEqual({ value: `${b}@2`, version: 2n, origin: 'memory' });
    expect([...t.keys()]).toEqual([b]);
  });

  it('a fill of one key is judged by its own versions, not by the other key held in its place', () => {
    const { t } = seeded();
    t.apply(set(a, 100n));
    t.watch(b);
    // b's own newest is this fill: a's higher version must neither refuse it nor be answered for it.
    expect(t.settle(b, stored(3n, 'b3'))).toEqual({ value: 'b3', version: 3n, origin: 'store' });
    expect(t.lookup(b)?.value).toBe('b3');
    expect(t.lookup(a)).toBeUndefined();
  });

  it('lets go of the replaced key as if evicted: its bytes, and its version joins the horizon', () => {
    const { t } = seeded();
    t.apply(set(a, 10n, 'aaaa'));
    t.apply(set(b, 5n, 'b'));
    expect(t.size).toBe(1);
    expect(t.collisions).toBe(1);
    expect(t.bytes).toBe(64 + b.length + 1);
    // A late change of a, older than the v10 the tier let go of, must not come back as a's newest.
    t.apply(set(a, 8n));
    expect(t.lookup(a)).toBeUndefined();
    expect(t.lookup(b)?.value).toBe('b');
    // a's own v10 again, or newer, is taken (and now b is the one let go of).
    t.apply(set(a, 10n, 'again'));
    expect(t.lookup(a)?.value).toBe('again');
    expect(t.collisions).toBe(2);
    expect(t.bytes).toBe(64 + a.length + 5);
  });

  it('keeps the floor of a fetch in flight when its key is pushed out by the other key', () => {
    const { t } = seeded();
    t.watch(a);
    t.apply(set(a, 10n));
    t.apply(set(b, 1n));
    // The fetch read a's v9 before v10 was applied: it must not be held, nor answered over b.
    expect(t.settle(a, stored(9n, 'a9'))).toEqual({ value: 'a9', version: 9n, origin: 'store' });
    expect(t.lookup(a)).toBeUndefined();
    expect(t.lookup(b)?.value).toBe(`${b}@1`);
  });

  it('an entry of one key that cannot be held (already expired, too large) does not drop the other', () => {
    const { t, clock } = seeded({ maxBytes: 200 });
    t.apply(set(a, 1n));
    t.apply(set(b, 2n, 'expired', clock.now()));
    t.apply(set(b, 3n, 'x'.repeat(200)));
    expect(t.lookup(a)?.value).toBe(`${a}@1`);
    expect(t.collisions).toBe(0);
    expect(t.bytes).toBe(64 + a.length + `${a}@1`.length);
  });

  it('an expired entry of one key is not dropped by a lookup of the other', () => {
    const { t, clock } = seeded({ ttlMs: 1000 });
    t.apply(set(a, 7n));
    clock.advance(1001);
    expect(t.lookup(b)).toBeUndefined();
    expect(t.size).toBe(1);
    // Dropped by its own lookup: its version joins the horizon then.
    expect(t.lookup(a)).toBeUndefined();
    expect(t.size).toBe(0);
    t.apply(set(a, 6n));
    expect(t.lookup(a)).toBeUndefined();
  });
});
