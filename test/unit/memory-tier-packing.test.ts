// The memory tier packs each entry (tag, version, expiry, value) into one string, checks expiries itself and
// counts MEMORY_MAX_BYTES itself, without lru-cache's TTL or size tracking: every version, value and
// expiry must come back exactly, and the byte count must follow every way an entry arrives and leaves.
import { describe, expect, it } from 'vitest';
import { tier } from '../support/memory-tier.js';

const set = (key: string, version: bigint, value: string, expiresAt: number | null = null) =>
  ({ op: 'set', key, version, value, expiresAt }) as const;

describe('memory tier packing', () => {
  const versions = [
    -1n,
    0n,
    1n,
    255n,
    256n,
    2n ** 32n + 7n,
    2n ** 48n + 5n,
    2n ** 53n - 1n,
    2n ** 53n,
    10n ** 30n,
  ];
  const values = ['', 'x', ':', 'a:b:c', '\u0000\u00ff\u0080', 'é€😀', 'v'.repeat(300)];

  it.each(versions)('gives back version %s and every value exactly', (version) => {
    const { t } = tier();
    values.forEach((value, i) => t.apply(set(`k${i}`, version, value)));
    values.forEach((value, i) => expect(t.lookup(`k${i}`)).toEqual({ value, version, origin: 'memory' }));
  });

  it.each([0, 1, 0x7f, 0x80, 0x81, 0xff, 0x100, 0x1_0000, 0x2_0304])(
    'holds and gives back a key of %s UTF-16 units, its value, version and place in keys()',
    (length) => {
      const { t } = tier({ maxBytes: 2 ** 24 });
      const key = 'k'.repeat(length);
      const other = `${'é'.repeat(length % 5)}:x`;
      for (const version of [7n, 2n ** 53n]) {
        t.apply(set(key, version, 'a:b'));
        t.apply(set(other, version, 'c'));
        expect(t.lookup(key)).toEqual({ value: 'a:b', version, origin: 'memory' });
        expect(t.lookup(other)).toEqual({ value: 'c', version, origin: 'memory' });
        expect([...t.keys()]).toEqual([other, key]);
      }
    },
  );

  // The longest keys take a few passes over 8 M characters: a generous time limit, as mutation runs are slow.
  it('holds the longest key whose length fits: 2^23 - 1 UTF-16 units', { timeout: 30_000 }, () => {
    const { t } = tier({ maxBytes: 2 ** 24 });
    const key = 'k'.repeat(2 ** 23 - 1);
    t.apply(set(key, 2n ** 53n, 'v'));
    expect(t.lookup(key)).toEqual({ value: 'v', version: 2n ** 53n, origin: 'memory' });
    expect([...t.keys()][0] === key).toBe(true);
  });

  it(
    'holds no key of 2^23 UTF-16 units or more (its length does not fit): a fill of one is answered, not held',
    {
      timeout: 30_000,
    },
    () => {
      const { t } = tier({ maxBytes: 2 ** 25 });
      const key = 'k'.repeat(2 ** 23);
      t.watch(key);
      expect(t.settle(key, { version: 1n, value: 'v', expiresAt: null })).toEqual({
        value: 'v',
        version: 1n,
        origin: 'store',
      });
      expect(t.lookup(key)).toBeUndefined();
      expect(t.size).toBe(0);
      expect(t.bytes).toBe(0);
    },
  );

  it("finds the long form's digits after the key, whatever the key contains", () => {
    const { t } = tier();
    for (const key of [':', '1:', 'a:b:', '99999999999999999999:']) {
      t.apply(set(key, 2n ** 60n, ':v:'));
      expect(t.lookup(key)).toEqual({ value: ':v:', version: 2n ** 60n, origin: 'memory' });
      t.watch(key);
      t.settle(key, null);
      // A fill older than what it holds is refused: the version read back from the entry is compared.
      expect(t.lookup(key)?.version).toBe(2n ** 60n);
    }
    t.apply({ op: 'delete', key: '7:', version: 2n ** 60n });
    expect(t.lookup('7:')).toEqual({ value: null, version: 2n ** 60n, origin: 'memory' });
  });

  it('gives back an absent key with no version, and a delete with its version', () => {
    const { t } = tier();
    t.watch('absent');
    t.settle('absent', null);
    expect(t.lookup('absent')).toEqual({ value: null, version: null, origin: 'memory' });
    t.apply({ op: 'delete', key: 'gone', version: 2n ** 40n });
    expect(t.lookup('gone')).toEqual({ value: null, version: 2n ** 40n, origin: 'memory' });
  });

  it('a version floor is a miss, and newer than it wins, older loses', () => {
    const { t } = tier();
    t.apply({ op: 'invalidate', key: 'k', version: 2n ** 50n, expiresAt: null });
    expect(t.lookup('k')).toBeUndefined();
    t.apply(set('k', 2n ** 50n - 1n, 'old'));
    expect(t.lookup('k')).toBeUndefined();
    t.apply(set('k', 2n ** 50n, 'new'));
    expect(t.lookup('k')?.value).toBe('new');
  });

  it('serves an entry up to its expiry and not a millisecond after', () => {
    const { t, clock } = tier({ ttlMs: 1000 });
    t.apply(set('ttl', 1n, 'a'));
    t.apply(set('store', 1n, 'b', clock.now() + 300));
    clock.advance(300);
    expect(t.lookup('store')?.value).toBe('b');
    clock.advance(1);
    expect(t.lookup('store')).toBeUndefined();
    clock.advance(699);
    expect(t.lookup('ttl')?.value).toBe('a');
    clock.advance(1);
    expect(t.lookup('ttl')).toBeUndefined();
  });

  it('keeps an entry with a TTL of decades (its expiry is capped, not wrapped)', () => {
    const year = 365 * 24 * 3600 * 1000;
    const { t, clock } = tier({ ttlMs: 100 * year });
    t.apply(set('k', 1n, 'v'));
    clock.advance(34 * year);
    expect(t.lookup('k')?.value).toBe('v');
  });

  it.each([0x12_3456, 2 ** 24 + 5, 2 ** 32 + 7, 0xab_cdef_1234])(
    'serves an entry with a TTL of %s ms up to its expiry and not a millisecond after',
    (ttlMs) => {
      const { t, clock } = tier({ ttlMs });
      t.apply(set('k', 1n, 'v'));
      clock.advance(ttlMs);
      expect(t.lookup('k')?.value).toBe('v');
      clock.advance(1);
      expect(t.lookup('k')).toBeUndefined();
    },
  );

  it('lists, purges and lets go of an entry by the same expiry as lookups: served at its last ms, gone after', () => {
    const { t, clock } = tier({ ttlMs: 1000 });
    t.apply(set('k', 1n, 'abc'));
    clock.advance(1000);
    expect([...t.keys()]).toEqual(['k']);
    expect(t.purgeExpired()).toBe(0);
    expect(t.lookup('k')?.value).toBe('abc');
    clock.advance(1);
    // A lookup that finds it expired lets it go at once: no purge needed to free its entry and bytes.
    expect(t.lookup('k')).toBeUndefined();
    expect(t.size).toBe(0);
    expect(t.bytes).toBe(0);
  });

  it('lists only keys that have not expired', () => {
    const { t, clock } = tier({ ttlMs: 1000 });
    t.apply(set('a', 1n, 'x'));
    clock.advance(600);
    t.apply(set('b', 1n, 'x'));
    clock.advance(600);
    expect([...t.keys()]).toEqual(['b']);
  });

  it('counts bytes through replacement by the same, a larger and a smaller entry, eviction, purge and clear', () => {
    const { t, clock } = tier({ ttlMs: 1000 });
    t.apply(set('k', 1n, 'abc')); // 64 + 1 + 3
    expect(t.bytes).toBe(68);
    t.watch('k');
    t.settle('k', { version: 1n, value: 'abc', expiresAt: null }); // the very same entry, same ms
    expect(t.bytes).toBe(68);
    t.apply(set('k', 2n, 'abcdef'));
    expect(t.bytes).toBe(71);
    t.apply({ op: 'delete', key: 'k', version: 3n });
    expect(t.bytes).toBe(65);
    t.apply(set('j', 1n, 'é')); // 64 + 1 + 2
    expect(t.bytes).toBe(65 + 67);
    clock.advance(1001);
    expect(t.purgeExpired()).toBe(2);
    expect(t.bytes).toBe(0);
    t.apply(set('x', 1n, 'x'));
    t.clear();
    expect(t.bytes).toBe(0);
  });

  it('evicts the least recently used entries past maxBytes, and holds nothing larger than maxBytes', () => {
    const { t } = tier({ maxBytes: 3 * 70 });
    for (const key of ['a', 'b', 'c']) t.apply(set(key, 1n, 'x'.repeat(5))); // 70 each
    expect(t.lookup('a')?.value).toBe('xxxxx'); // a is now the most recent; b the least
    t.apply(set('d', 1n, 'x'.repeat(5)));
    expect(t.lookup('b')).toBeUndefined();
    expect([...t.keys()].sort()).toEqual(['a', 'c', 'd']);
    expect(t.bytes).toBe(210);
    t.apply(set('a', 2n, 'x'.repeat(300)));
    expect(t.lookup('a')).toBeUndefined();
    expect(t.bytes).toBe(140);
    // Exactly the whole budget fits, alone.
    t.apply(set('e', 1n, 'x'.repeat(3 * 70 - 65)));
    expect([...t.keys()]).toEqual(['e']);
    expect(t.bytes).toBe(210);
  });
});
