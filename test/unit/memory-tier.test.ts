import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StoredEntry } from '../../src/domain/entry.js';
import type { MemoryTier } from '../../src/domain/memory-tier.js';
import { tier } from '../support/memory-tier.js';

const stored = (version: bigint, value: string | null, expiresAt: number | null = null): StoredEntry => ({
  version,
  value,
  expiresAt,
});

/** A fill through the same watch → settle sequence the batcher drives. */
function fill(t: MemoryTier, key: string, entry: StoredEntry | null) {
  t.watch(key);
  return t.settle(key, entry);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('MemoryTier', () => {
  it('answers a filled value from memory afterwards', () => {
    const { t } = tier();
    expect(fill(t, 'k', stored(5n, 'a'))).toEqual({ value: 'a', version: 5n, origin: 'store' });
    expect(t.lookup('k')).toEqual({ value: 'a', version: 5n, origin: 'memory' });
  });

  it('keeps only changes at least as new as what it holds (reordered and replayed changes are harmless)', () => {
    const { t } = tier();
    t.apply({ op: 'set', key: 'k', version: 10n, value: 'new', expiresAt: null });
    t.apply({ op: 'set', key: 'k', version: 9n, value: 'old', expiresAt: null });
    expect(t.lookup('k')?.value).toBe('new');
    t.apply({ op: 'set', key: 'k', version: 10n, value: 'new', expiresAt: null });
    expect(t.lookup('k')?.version).toBe(10n);
    t.apply({ op: 'delete', key: 'k', version: 8n });
    expect(t.lookup('k')?.value).toBe('new');
  });

  it('does not take a late change for a key it let go of (evicted, expired, cleared) if it is older than that', () => {
    const set = (key: string, version: bigint) =>
      ({ op: 'set', key, version, value: `${key}@${version}`, expiresAt: null }) as const;
    // Evicted: v5 of a goes when b arrives; a late v3 of a (a replay) must not come back as the newest.
    const evicting = tier({ maxEntries: 1 }).t;
    evicting.apply(set('a', 5n));
    evicting.apply(set('b', 6n));
    evicting.apply(set('a', 3n));
    expect(evicting.lookup('a')).toBeUndefined();
    // The same version again, or a newer one, is taken.
    evicting.apply(set('a', 5n));
    expect(evicting.lookup('a')?.version).toBe(5n);

    // Expired, and cleared: the same rule, for a key that was never held too (it may have been older).
    const { t, clock } = tier({ ttlMs: 1000 });
    t.apply(set('x', 10n));
    clock.advance(1001);
    expect(t.purgeExpired()).toBe(1);
    t.apply(set('x', 9n));
    expect(t.lookup('x')).toBeUndefined();
    t.apply(set('y', 20n));
    t.clear();
    t.apply({ op: 'delete', key: 'y', version: 19n });
    t.apply(set('z', 19n));
    expect([t.lookup('y'), t.lookup('z')]).toEqual([undefined, undefined]);
    t.apply(set('z', 21n));
    expect(t.lookup('z')?.version).toBe(21n);
    // Replacing an entry forgets nothing: an older change for another key still enters.
    t.apply(set('z', 22n));
    t.apply(set('w', 21n));
    expect(t.lookup('w')?.version).toBe(21n);
  });

  it('keeps its horizon at the newest version it let go of, and applies it only to keys it does not hold', () => {
    const set = (key: string, version: bigint) =>
      ({ op: 'set', key, version, value: `${key}@${version}`, expiresAt: null }) as const;
    const { t } = tier();
    // Let go of v10, then of v5 (in one clear): the horizon stays at 10.
    t.apply(set('new', 10n));
    t.apply(set('old', 5n));
    t.clear();
    t.apply(set('late', 7n));
    expect(t.lookup('late')).toBeUndefined();
    // A key the tier holds takes any newer change, even one older than the horizon.
    const { t: holding } = tier();
    holding.apply(set('held', 2n));
    holding.apply(set('gone', 10n));
    holding.apply({ op: 'delete', key: 'gone', version: 11n });
    holding.apply(set('gone', 12n));
    holding.apply({ op: 'set', key: 'gone', version: 13n, value: 'x', expiresAt: 0 }); // already expired
    holding.apply(set('held', 3n));
    expect(holding.lookup('held')?.version).toBe(3n);
    expect(holding.lookup('gone')).toBeUndefined();
    // Replacing an entry with a newer one lets nothing go: no horizon on a fresh tier.
    const { t: replacing } = tier();
    replacing.apply(set('a', 10n));
    replacing.apply(set('a', 11n));
    replacing.apply(set('b', 5n));
    expect(replacing.lookup('b')?.version).toBe(5n);
    // The entry dropped by the expired change held v12: the horizon.
    holding.apply(set('other', 11n));
    expect(holding.lookup('other')).toBeUndefined();
    holding.apply(set('other', 12n));
    expect(holding.lookup('other')?.version).toBe(12n);
  });

  it('rejects a late fill older than what it holds and answers the newer value', () => {
    const { t } = tier();
    t.watch('k');
    t.apply({ op: 'set', key: 'k', version: 7n, value: 'v7', expiresAt: null });
    expect(t.settle('k', stored(6n, 'v6'))).toEqual({ value: 'v7', version: 7n, origin: 'memory' });
    expect(t.lookup('k')?.value).toBe('v7');
  });

  it('closes the cache-aside race even when the announced entry was evicted before the late fill lands', () => {
    const { t } = tier();
    // A fetch is under way and will answer v1 …
    t.watch('k');
    // … meanwhile v2 is written and announced, and then the entry is evicted (here: cleared).
    t.apply({ op: 'set', key: 'k', version: 2n, value: 'v2', expiresAt: null });
    t.clear();
    // The late fill must not bring v1 into memory.
    t.settle('k', stored(1n, 'v1'));
    expect(t.lookup('k')).toBeUndefined();
  });

  it('a delete announced during a fetch keeps the deleted value out (tombstone wins)', () => {
    const { t } = tier();
    t.watch('k');
    t.apply({ op: 'delete', key: 'k', version: 4n });
    t.settle('k', stored(3n, 'alive'));
    expect(t.lookup('k')).toEqual({ value: null, version: 4n, origin: 'memory' });
  });

  it('remembers an absent key for negativeTtlMs only, and forgets it as soon as a write is announced', () => {
    const { t, clock } = tier({ negativeTtlMs: 500 });
    fill(t, 'gone', null);
    expect(t.lookup('gone')).toEqual({ value: null, version: null, origin: 'memory' });
    clock.advance(501);
    expect(t.lookup('gone')).toBeUndefined();
    fill(t, 'gone', null);
    t.apply({ op: 'set', key: 'gone', version: 1n, value: 'here', expiresAt: null });
    expect(t.lookup('gone')?.value).toBe('here');
  });

  it('never keeps an entry past its store expiry, and never past its own TTL', () => {
    const { t, clock } = tier({ ttlMs: 10_000 });
    fill(t, 'short', stored(1n, 'x', clock.now() + 2000));
    fill(t, 'long', stored(1n, 'y', clock.now() + 50_000));
    clock.advance(2001);
    expect(t.lookup('short')).toBeUndefined();
    expect(t.lookup('long')?.value).toBe('y');
    clock.advance(8000);
    expect(t.lookup('long')).toBeUndefined();
  });

  it('does not hold a value whose store expiry has already passed', () => {
    const { t, clock } = tier();
    t.apply({ op: 'set', key: 'k', version: 1n, value: 'x', expiresAt: clock.now() - 1 });
    expect(t.lookup('k')).toBeUndefined();
  });

  it('an invalidation turns the key into a miss and sets a floor for the refetch', () => {
    const { t } = tier();
    fill(t, 'big', stored(1n, 'small'));
    t.apply({ op: 'invalidate', key: 'big', version: 2n, expiresAt: null });
    expect(t.lookup('big')).toBeUndefined();
    // A lagging replica or late fetch: refused, and answered as what it is (the store's), not as memory.
    expect(fill(t, 'big', stored(1n, 'small'))).toEqual({ value: 'small', version: 1n, origin: 'store' });
    expect(t.lookup('big')).toBeUndefined();
    fill(t, 'big', stored(2n, 'huge'));
    expect(t.lookup('big')?.value).toBe('huge');
  });

  it('is bounded by entry count and by bytes, evicting the least recently used', () => {
    const { t } = tier({ maxEntries: 3 });
    for (const k of ['a', 'b', 'c']) fill(t, k, stored(1n, k));
    t.lookup('a');
    fill(t, 'd', stored(1n, 'd'));
    expect(t.lookup('b')).toBeUndefined();
    expect(t.lookup('a')?.value).toBe('a');

    const bytes = tier({ maxBytes: 1000 }).t;
    for (let i = 0; i < 10; i++) fill(bytes, `k${i}`, stored(1n, 'x'.repeat(200)));
    expect(bytes.bytes).toBeLessThanOrEqual(1000);
    expect(bytes.size).toBeLessThan(10);
  });

  it('purgeExpired removes expired entries without any read touching them, and says how many', () => {
    const { t, clock } = tier({ ttlMs: 1000 });
    for (let i = 0; i < 5; i++) fill(t, `k${i}`, stored(1n, 'v'));
    clock.advance(500);
    fill(t, 'fresh1', stored(1n, 'v'));
    fill(t, 'fresh2', stored(1n, 'v'));
    clock.advance(501);
    expect(t.size).toBe(7);
    expect(t.purgeExpired()).toBe(5);
    expect(t.size).toBe(2);
  });

  it('counts an entry as a fixed overhead plus its key and value in UTF-8 bytes', () => {
    const { t } = tier();
    fill(t, 'ké', stored(1n, 'abc')); // 64 + 3 + 3
    expect(t.bytes).toBe(70);
    fill(t, 'gone', null); // 64 + 4, no value
    expect(t.bytes).toBe(70 + 68);
  });

  it('removes expired entries only when purged, not by timers of its own', () => {
    vi.useFakeTimers();
    const { t, clock } = tier({ ttlMs: 1000 });
    fill(t, 'k', stored(1n, 'v'));
    clock.advance(1001);
    vi.advanceTimersByTime(10_000);
    expect(t.size).toBe(1);
    expect(t.purgeExpired()).toBe(1);
  });

  it('drops what it held when a change arrives already expired (expiry exactly now included)', () => {
    const { t, clock } = tier();
    fill(t, 'k', stored(1n, 'old'));
    t.apply({ op: 'set', key: 'k', version: 2n, value: 'new', expiresAt: clock.now() });
    expect(t.lookup('k')).toBeUndefined();
    fill(t, 'j', stored(1n, 'old'));
    t.apply({ op: 'set', key: 'j', version: 2n, value: 'new', expiresAt: clock.now() - 1 });
    expect(t.lookup('j')).toBeUndefined();
  });

  it('settles a fetch nobody watched (e.g. after clear) by the fill rule alone', () => {
    const { t } = tier();
    expect(t.settle('k', stored(3n, 'v3'))).toEqual({ value: 'v3', version: 3n, origin: 'store' });
    expect(t.lookup('k')?.value).toBe('v3');
    t.abandon('never-watched');
  });

  it('keeps the floor for a second fetch in flight when the first settles', () => {
    const { t } = tier();
    t.watch('k');
    t.watch('k');
    t.settle('k', stored(1n, 'v1')); // the first fetch
    t.apply({ op: 'set', key: 'k', version: 2n, value: 'v2', expiresAt: null });
    t.clear();
    t.settle('k', stored(1n, 'v1')); // the second, late: must not bring v1 back
    expect(t.lookup('k')).toBeUndefined();
  });

  it('keeps the floor of a watched key when a second fetch of it starts', () => {
    const { t } = tier();
    t.watch('k');
    t.apply({ op: 'set', key: 'k', version: 2n, value: 'v2', expiresAt: null });
    t.clear();
    t.watch('k');
    t.settle('k', stored(1n, 'v1'));
    expect(t.lookup('k')).toBeUndefined();
  });

  it('forgets a key once all its fetches have settled or failed: no floor outlives them', () => {
    for (const end of ['settle', 'abandon'] as const) {
      const { t } = tier();
      t.watch('k');
      t.watch('k');
      if (end === 'settle') {
        t.settle('k', null);
        t.settle('k', null);
      } else {
        t.abandon('k');
        t.abandon('k');
      }
      // Not watched any more, so this change leaves no floor behind once the entry is gone …
      t.apply({ op: 'set', key: 'k', version: 5n, value: 'v5', expiresAt: null });
      t.clear();
      // … and a later fill is judged by what the tier holds (nothing), not by a leftover floor.
      fill(t, 'k', stored(3n, 'v3'));
      expect(t.lookup('k')?.value, end).toBe('v3');
    }
  });

  it('judges a late fill by the newest of floor and held entry, whichever it is', () => {
    // Held newer than the floor: a fill between the two is refused.
    const a = tier().t;
    a.watch('k');
    a.watch('k');
    a.apply({ op: 'set', key: 'k', version: 2n, value: 'v2', expiresAt: null });
    a.settle('k', stored(5n, 'v5'));
    expect(a.settle('k', stored(3n, 'v3'))).toEqual({ value: 'v5', version: 5n, origin: 'memory' });
    // Floor newer than what an older change brings: the floor stays.
    const b = tier().t;
    b.watch('k');
    b.apply({ op: 'set', key: 'k', version: 5n, value: 'v5', expiresAt: null });
    b.clear();
    b.apply({ op: 'set', key: 'k', version: 3n, value: 'v3', expiresAt: null });
    expect(b.lookup('k')).toBeUndefined();
    b.settle('k', stored(4n, 'v4'));
    expect(b.lookup('k')).toBeUndefined();
    // And a newer change raises the floor.
    const c = tier().t;
    c.watch('k');
    c.apply({ op: 'set', key: 'k', version: 2n, value: 'v2', expiresAt: null });
    c.apply({ op: 'set', key: 'k', version: 5n, value: 'v5', expiresAt: null });
    c.clear();
    c.settle('k', stored(3n, 'v3'));
    expect(c.lookup('k')).toBeUndefined();
  });

  it('keeps values exactly, whatever they contain, apart from absence and deletes', () => {
    const { t } = tier();
    for (const [key, value] of [
      ['empty', ''],
      ['colons', '12:34::'],
      ['digits', '99'],
      ['unicode', 'é€𝄞'],
    ] as const) {
      t.apply({ op: 'set', key, version: 123456789012345678n, value, expiresAt: null });
      expect(t.lookup(key)).toEqual({ value, version: 123456789012345678n, origin: 'memory' });
    }
    t.apply({ op: 'delete', key: 'empty', version: 123456789012345679n });
    expect(t.lookup('empty')).toEqual({ value: null, version: 123456789012345679n, origin: 'memory' });
  });

  it('answers a refetch of a key remembered as absent from the store, as absent with no version', () => {
    const { t } = tier();
    fill(t, 'gone', null);
    // A fresh read fetches again: the store's answer, not memory's.
    expect(fill(t, 'gone', null)).toEqual({ value: null, version: null, origin: 'store' });
    expect(t.lookup('gone')).toEqual({ value: null, version: null, origin: 'memory' });
  });
});
