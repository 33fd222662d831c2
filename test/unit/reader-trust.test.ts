// A reader trusts memory only while it can prove that every committed change reached it — through the
// outbox and the relay, not only the bus — and acts on a change of trust when it happens, not on a read.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import { Reader } from '../../src/reader/reader.js';
import { Writer } from '../../src/writer/writer.js';
import { startRelay } from '../support/relay.js';

const MAX_LAG = 5_000;
const limits = {
  maxReadKeys: 1000,
  maxWriteEntries: 1000,
  maxKeyBytes: 1024,
  maxValueBytes: 1 << 20,
  maxTtlSeconds: 3600,
};
const open: { close(): Promise<unknown> }[] = [];

beforeEach(() => {
  vi.useFakeTimers({ now: 1_800_000_000_000 });
});
afterEach(async () => {
  const closing = Promise.all(open.splice(0).map((o) => o.close()));
  await vi.runOnlyPendingTimersAsync();
  await closing;
  vi.useRealTimers();
});

describe('Reader trust', () => {
  it('stops trusting memory when a committed change waits unannounced (dead relay), at once and without a read', async () => {
    const store = new MemoryStore({ clock: { now: () => Date.now() } });
    const bus = new LocalBus();
    const reader = await Reader.start(store, bus, {
      instanceId: 'r1',
      memory: { maxEntries: 1000, maxBytes: 1 << 20, ttlMs: 600_000, negativeTtlMs: 600_000 },
      maxBatch: 100,
      purgeIntervalMs: 600_000,
      feed: { syncIntervalMs: 200, maxLagMs: MAX_LAG },
    });
    const writer = new Writer(store, { limits, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 1024 });
    const relay = startRelay(store.outbox, bus);
    open.push(reader, bus);
    const changes: { at: number; trusted: boolean }[] = [];
    reader.onTrustChange((trusted) => changes.push({ at: Date.now(), trusted }));

    await writer.setValues([{ key: 'k', value: 'v1' }], null);
    await vi.advanceTimersByTimeAsync(300);
    expect(await reader.read(['k'], false)).toMatchObject([{ value: 'v1', origin: 'memory' }]);

    // The only relay dies; a write is committed (acknowledged) but never announced.
    const closing = relay.close();
    await vi.advanceTimersByTimeAsync(200);
    await closing;
    await writer.setValues([{ key: 'k', value: 'v2' }], null);
    const committedAt = Date.now();
    // Nobody reads. Once the unannounced entry is MAX_LAG old, memory is cleared, by the monitor itself.
    await vi.advanceTimersByTimeAsync(MAX_LAG + 500);
    expect(changes.map((c) => c.trusted)).toEqual([false]);
    expect(changes[0]!.at - committedAt).toBeLessThanOrEqual(MAX_LAG + 1);
    expect(reader.tier.size).toBe(0);
    // The batcher flushes on a timer of its own: let it run.
    const fetched = reader.read(['k'], false);
    await vi.advanceTimersByTimeAsync(10);
    expect(await fetched).toMatchObject([{ value: 'v2', origin: 'redis' }]);

    // Another relay announces the entry: the proof holds again, and so does trust.
    const next = startRelay(store.outbox, bus, { relayId: 'next', reclaimAfterMs: 0 });
    open.push(next);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(changes.map((c) => c.trusted)).toEqual([false, true]);
    expect(reader.feedCurrent).toBe(true);
  });

  it('never goes back to an older version from the feed after answering a newer one from Redis while untrusted', async () => {
    const store = new MemoryStore({ clock: { now: () => Date.now() } });
    const bus = new LocalBus();
    const reader = await Reader.start(store, bus, {
      instanceId: 'r2',
      memory: { maxEntries: 1000, maxBytes: 1 << 20, ttlMs: 600_000, negativeTtlMs: 600_000 },
      maxBatch: 100,
      purgeIntervalMs: 600_000,
      feed: { syncIntervalMs: 200, maxLagMs: MAX_LAG },
    });
    const writer = new Writer(store, { limits, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 1024 });
    open.push(reader, bus);
    // v1 and v2 are committed with no relay running: the reader stops trusting memory and answers v2 from
    // Redis. Then v1's announcement alone arrives late (as a relay taking over would send it), after the
    // outbox is clear and trust is back.
    const [v1] = await writer.setValues([{ key: 'k', value: 'v1' }], null);
    await writer.setValues([{ key: 'k', value: 'v2' }], null);
    await vi.advanceTimersByTimeAsync(MAX_LAG + 500);
    expect(reader.feedCurrent).toBe(false);
    const fetched = reader.read(['k'], false);
    await vi.advanceTimersByTimeAsync(10);
    expect(await fetched).toMatchObject([{ value: 'v2', origin: 'redis' }]);
    await store.outbox.ack(
      (await store.outbox.claim('test', { max: 10, blockMs: 0, reclaimAfterMs: 0 })).map((e) => e.id),
    );
    await vi.advanceTimersByTimeAsync(1_000);
    expect(reader.feedCurrent).toBe(true);
    await bus.publish([{ op: 'set', key: 'k', version: v1!.version, value: 'v1', expiresAt: null }]);
    await vi.advanceTimersByTimeAsync(10);
    const again = reader.read(['k'], false);
    await vi.advanceTimersByTimeAsync(10);
    expect(await again).toMatchObject([{ value: 'v2' }]);
  });
});
