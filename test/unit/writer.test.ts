// The write side on the embedded store: what a set or delete commits (expiry in ms, tombstones, values too
// large for the feed), what it refuses before touching the store, and what /metrics counts of it.
import { describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import { metrics } from '../../src/observability.js';
import { FeedBackedUp } from '../../src/ports.js';
import { Writer } from '../../src/writer/writer.js';

const limits = {
  maxReadKeys: 10,
  maxWriteEntries: 2,
  maxKeyBytes: 16,
  maxValueBytes: 64,
  maxTtlSeconds: 3600,
};

function setup(outboxLimit?: { maxEntries: number; maxBytes: number }) {
  let now = 1_800_000_000_000;
  const clock = { now: () => now };
  const store = new MemoryStore({ clock });
  const writer = new Writer(store, {
    limits,
    tombstoneTtlMs: 5000,
    inlineValueMaxBytes: 4,
    ...(outboxLimit ? { outboxLimit } : {}),
  });
  return { store, writer, clock, advance: (ms: number) => (now += ms) };
}

/** A counter's value on /metrics, 0 when the series is absent. */
async function counter(name: string, labels = ''): Promise<number> {
  const text = await metrics.render();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('Writer', () => {
  it('sets values with an expiry given in seconds, held in ms', async () => {
    const { store, writer, clock } = setup();
    const [committed] = await writer.setValues([{ key: 'k', value: 'v' }], 2);
    expect(committed).toMatchObject({ key: 'k', expiresAt: clock.now() + 2000 });
    expect((await store.read(['k']))[0]).toMatchObject({ value: 'v', expiresAt: clock.now() + 2000 });
    await writer.setValues([{ key: 'j', value: 'v' }], null);
    expect((await store.read(['j']))[0]?.expiresAt).toBeNull();
  });

  it('deletes keys as tombstones kept for tombstoneTtlMs, and checks the keys first', async () => {
    const { store, writer, advance } = setup();
    const [set] = await writer.setValues([{ key: 'k', value: 'v' }], null);
    const [deleted] = await writer.deleteValues(['k']);
    expect(deleted).toMatchObject({ key: 'k', op: 'delete' });
    expect(deleted!.version).toBeGreaterThan(set!.version);
    expect((await store.read(['k']))[0]).toMatchObject({ value: null, version: deleted!.version });
    advance(5001);
    expect((await store.read(['k']))[0]).toBeNull();
    const write = vi.spyOn(store, 'write');
    await expect(writer.deleteValues(['a', 'b', 'c'])).rejects.toThrow(
      'keys: 3 keys, more than the limit of 2',
    );
    await expect(writer.deleteValues([''])).rejects.toThrow('keys[0]: a key must not be empty');
    expect(write).not.toHaveBeenCalled();
  });

  it('commits nothing for an empty batch, and refuses an invalid one before the store', async () => {
    const { store, writer } = setup();
    const write = vi.spyOn(store, 'write');
    expect(await writer.setValues([], null)).toEqual([]);
    expect(await writer.deleteValues([])).toEqual([]);
    await expect(writer.setValues([{ key: 'k', value: 'v' }], 0)).rejects.toThrow('ttlSeconds');
    expect(write).not.toHaveBeenCalled();
    expect(await store.outbox.size()).toBe(0);
  });

  it('announces a value larger than inlineValueMaxBytes as an invalidation', async () => {
    const { store, writer } = setup();
    await writer.setValues(
      [
        { key: 'small', value: 'abcd' },
        { key: 'large', value: 'abcde' },
      ],
      null,
    );
    const [entry] = await store.outbox.claim('r', { max: 10, blockMs: 0, reclaimAfterMs: 60_000 });
    expect(entry?.changes.map((c) => `${c.key}:${c.op}`)).toEqual(['small:set', 'large:invalidate']);
  });

  it('refuses writes while the outbox is at its bound, counting each refusal; counts what it commits by op', async () => {
    const { writer } = setup({ maxEntries: 1, maxBytes: 0 });
    const sets = await counter('tiercache_writer_ops_total', '{op="set"}');
    const deletes = await counter('tiercache_writer_ops_total', '{op="delete"}');
    const refusals = await counter('tiercache_writer_backed_up_total');
    await writer.setValues(
      [
        { key: 'a', value: '1' },
        { key: 'b', value: '2' },
      ],
      null,
    );
    expect(await counter('tiercache_writer_ops_total', '{op="set"}')).toBe(sets + 2);
    const refused = await writer.deleteValues(['a']).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(FeedBackedUp);
    expect(await counter('tiercache_writer_backed_up_total')).toBe(refusals + 1);
    expect(await counter('tiercache_writer_ops_total', '{op="delete"}')).toBe(deletes);
    // Any other failure is not a refusal.
    const other = setup();
    const deletesBefore = await counter('tiercache_writer_ops_total', '{op="delete"}');
    await other.writer.deleteValues(['a']);
    expect(await counter('tiercache_writer_ops_total', '{op="delete"}')).toBe(deletesBefore + 1);
    vi.spyOn(other.store, 'write').mockRejectedValueOnce(new Error('store down'));
    await expect(other.writer.deleteValues(['a'])).rejects.toThrow();
    expect(await counter('tiercache_writer_backed_up_total')).toBe(refusals + 1);
  });
});
