// The in-memory store: the shared Store contract on the real clock, then what only a fake clock can show
// without waiting — exact expiry edges, versions across clock steps, and the sweep that bounds memory.
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import type { WriteOp } from '../../src/ports.js';
import { describeStoreContract } from './store.contract.js';

describeStoreContract('MemoryStore', async () => {
  // The real clock, plus whatever time the test lets elapse at once.
  let skipped = 0;
  const store = new MemoryStore({ clock: { now: () => Date.now() + skipped } });
  return {
    store,
    cleanup: () => store.close(),
    elapse: async (ms) => {
      skipped += ms;
    },
    // A claim that finds nothing registers its wake-up before claim() returns: it is waiting already.
    claimWaiting: async () => undefined,
  };
});

function fakeClock(start: number): { now(): number; advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
  };
}

const T = 1_700_000_000_000;
const KEEP = { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 65536 };

describe('MemoryStore on a fake clock', () => {
  it('stamps versions with the clock in µs, one µs apart for batches within the same ms', async () => {
    const store = new MemoryStore({ clock: fakeClock(T) });
    const [a] = await store.write([{ op: 'set', key: 'a', value: '1' }], KEEP);
    const [b] = await store.write([{ op: 'set', key: 'b', value: '1' }], KEEP);
    expect(a?.version).toBe(BigInt(T) * 1000n);
    expect(b?.version).toBe(BigInt(T) * 1000n + 1n);
  });

  it('keeps a set through the ms it expires at and drops it after', async () => {
    const clock = fakeClock(T);
    const store = new MemoryStore({ clock });
    const [committed] = await store.write([{ op: 'set', key: 'a', value: '1' }], { ...KEEP, ttlMs: 500 });
    expect(committed?.expiresAt).toBe(T + 500);
    clock.advance(500);
    expect((await store.read(['a']))[0]?.value).toBe('1');
    clock.advance(1);
    expect(await store.read(['a'])).toEqual([null]);
    expect(store.size).toBe(0);
  });

  it('drops a tombstone after tombstoneTtlMs', async () => {
    const clock = fakeClock(T);
    const store = new MemoryStore({ clock });
    await store.write([{ op: 'delete', key: 'a' }], {
      ttlMs: null,
      tombstoneTtlMs: 100,
      inlineValueMaxBytes: 65536,
    });
    clock.advance(100);
    expect((await store.read(['a']))[0]).toMatchObject({ value: null, expiresAt: T + 100 });
    clock.advance(1);
    expect(await store.read(['a'])).toEqual([null]);
  });

  it('versions a rewrite above the expired tombstone even when the wall clock stepped back', async () => {
    const clock = fakeClock(T);
    const store = new MemoryStore({ clock });
    const [deleted] = await store.write([{ op: 'delete', key: 'a' }], {
      ttlMs: null,
      tombstoneTtlMs: 100,
      inlineValueMaxBytes: 65536,
    });
    clock.advance(200);
    expect(await store.read(['a'])).toEqual([null]);
    clock.advance(-10_000);
    const [rewritten] = await store.write([{ op: 'set', key: 'a', value: '2' }], KEEP);
    expect(rewritten?.version).toBeGreaterThan(deleted?.version ?? 0n);
  });

  it('sweeps expired entries nobody reads again, so memory follows the live set', async () => {
    const clock = fakeClock(T);
    const store = new MemoryStore({ clock });
    const batch = (label: string): WriteOp[] =>
      Array.from({ length: 1500 }, (_, i) => ({ op: 'set', key: `${label}${i}`, value: 'x' }));
    await store.write(batch('short'), { ...KEEP, ttlMs: 10 });
    clock.advance(11);
    await store.write(batch('long'), KEEP);
    expect(store.size).toBe(1500);
  });

  it('refuses to work once closed', async () => {
    const store = new MemoryStore();
    await store.close();
    await expect(store.read(['a'])).rejects.toThrow(/closed/);
    await expect(store.write([], KEEP)).rejects.toThrow(/closed/);
  });
});
