// What the reader reports and whom it tells, on the embedded adapters: keys answered by origin and existence
// on /metrics (the operator's view of the memory tier's worth), listeners that stop or throw, the per-request
// loaders, fresh reads that skip memory, and the purge of expired memory entries.
import { afterEach, describe, expect, it } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import { metrics } from '../../src/observability.js';
import { createLoaders, readAll } from '../../src/reader/loaders.js';
import { Reader } from '../../src/reader/reader.js';
import { captureLogs, messages } from '../support/logs.js';
import { startRelay } from '../support/relay.js';

const open: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function setup({ purgeIntervalMs = 60_000, ttlMs = 60_000 } = {}) {
  const store = new MemoryStore();
  const bus = new LocalBus();
  const reader = await Reader.start(store, bus, {
    instanceId: 'r1',
    memory: { maxEntries: 1000, maxBytes: 1 << 20, ttlMs, negativeTtlMs: ttlMs },
    maxBatch: 100,
    purgeIntervalMs,
    feed: { syncIntervalMs: 1_000_000, maxLagMs: 60_000 },
  });
  const relay = startRelay(store.outbox, bus);
  open.push(bus, reader, relay);
  /** Writes, and resolves once the reader has applied the announcement. */
  const write = async (key: string, value: string) => {
    let stop = (): void => undefined;
    const applied = new Promise<void>((resolve) => {
      stop = reader.onApplied((changes) => changes.some((c) => c.key === key) && resolve());
    });
    await store.write([{ op: 'set', key, value }], {
      ttlMs: null,
      tombstoneTtlMs: 60_000,
      inlineValueMaxBytes: 1024,
    });
    await applied;
    stop();
  };
  return { store, bus, reader, write };
}

/** tiercache_reader_keys_total by origin and existence. */
async function keysCounted(): Promise<Record<string, number>> {
  const text = await metrics.render();
  const counts: Record<string, number> = {};
  for (const origin of ['memory', 'redis'])
    for (const exists of ['true', 'false']) {
      const line = text
        .split('\n')
        .find((l) => l.startsWith(`tiercache_reader_keys_total{origin="${origin}",exists="${exists}"} `));
      counts[`${origin}/${exists}`] = line ? Number(line.split(' ')[1]) : 0;
    }
  return counts;
}

async function countedBy(read: () => Promise<unknown> | unknown): Promise<Record<string, number>> {
  const before = await keysCounted();
  await read();
  const after = await keysCounted();
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

describe('Reader accounting', () => {
  it('counts every key answered by origin and by whether it exists, on each read path', async () => {
    const { reader, write } = await setup();
    await write('a', '1');
    await write('b', '2');
    // The feed put a and b in memory; "none" comes from the store, absent.
    expect(await countedBy(() => reader.read(['a', 'b', 'none'], false))).toEqual({
      'memory/true': 2,
      'memory/false': 0,
      'redis/true': 0,
      'redis/false': 1,
    });
    expect(await countedBy(() => reader.read(['a', 'b'], true))).toEqual({
      'memory/true': 0,
      'memory/false': 0,
      'redis/true': 2,
      'redis/false': 0,
    });
    // Held now: readHeld answers all three from memory at once.
    expect(await countedBy(() => reader.readHeld(['a', 'b', 'none']))).toEqual({
      'memory/true': 2,
      'memory/false': 1,
      'redis/true': 0,
      'redis/false': 0,
    });
    expect(await countedBy(() => reader.readHeld(['a']))).toMatchObject({
      'memory/true': 1,
      'memory/false': 0,
    });
    expect(await countedBy(() => reader.readHeld(['none']))).toMatchObject({
      'memory/true': 0,
      'memory/false': 1,
    });
    // A miss among them: readHeld answers nothing and counts nothing; read() answers from both.
    expect(await countedBy(() => expect(reader.readHeld(['a', 'cold'])).toBeUndefined())).toEqual({
      'memory/true': 0,
      'memory/false': 0,
      'redis/true': 0,
      'redis/false': 0,
    });
    expect(await countedBy(() => reader.read(['a', 'cold'], false))).toEqual({
      'memory/true': 1,
      'memory/false': 0,
      'redis/true': 0,
      'redis/false': 1,
    });
  });

  it('stops calling a listener once it unsubscribes, and goes on past one that throws', async () => {
    const { reader, write } = await setup();
    const seen: string[] = [];
    const stopFirst = reader.onApplied((changes) => seen.push(`first ${changes[0]?.key}`));
    reader.onApplied(() => {
      throw new Error('listener bug');
    });
    let last!: () => void;
    const applied = (key: string) =>
      new Promise<void>((resolve) => {
        last = reader.onApplied((changes) => changes.some((c) => c.key === key) && resolve());
      });
    const logs = captureLogs();
    try {
      let done = applied('x');
      await write('x', '1');
      await done;
      last();
      stopFirst();
      done = applied('y');
      await write('y', '1');
      await done;
      last();
    } finally {
      logs.restore();
    }
    expect(seen).toEqual(['first x']);
    expect(messages(logs.lines, 'error')).toEqual(['change listener failed', 'change listener failed']);
  });

  it('reads fresh from the store even when memory holds the key, and says where each answer came from', async () => {
    const { reader, write, store } = await setup();
    await write('k', 'v1');
    await reader.read(['k'], false);
    // Written behind the reader's back (no announcement reaches it): only the store has v2.
    const relayless = await store.write([{ op: 'set', key: 'k', value: 'v2' }], {
      ttlMs: 5000,
      tombstoneTtlMs: 60_000,
      inlineValueMaxBytes: 1024,
    });
    const fresh = await reader.fetchFresh('k');
    expect(fresh).toMatchObject({ value: 'v2', version: relayless[0]!.version, origin: 'store' });
    expect(fresh.expiresAt).toBeGreaterThan(Date.now());
    const loaders = createLoaders(reader);
    expect(await readAll(reader, loaders, ['k'], true)).toEqual([
      { key: 'k', value: 'v2', version: relayless[0]!.version, origin: 'redis' },
    ]);
    // The loaders are built once per request, each the same object on every use.
    expect(loaders.fresh).toBe(loaders.fresh);
    expect(loaders.cached).toBe(loaders.cached);
  });

  it('rejects a whole read when a key fails, and a loader without a reader', async () => {
    const { reader, store } = await setup();
    const read = store.read.bind(store);
    store.read = async () => {
      throw new Error('store down');
    };
    const logs = captureLogs();
    try {
      await expect(readAll(reader, createLoaders(reader), ['a', 'b'], false)).rejects.toThrow('store down');
    } finally {
      logs.restore();
      store.read = read;
    }
    await expect(createLoaders(null).cached.load('a')).rejects.toThrow('not a reader');
    await expect(createLoaders(null).fresh.load('a')).rejects.toThrow('not a reader');
  });

  it('purges expired memory entries on its schedule', async () => {
    const { reader, write } = await setup({ purgeIntervalMs: 20, ttlMs: 30 });
    await write('k', 'v');
    await reader.read(['k'], false);
    expect(reader.tier.size).toBe(1);
    const started = Date.now();
    while (reader.tier.size > 0 && Date.now() - started < 3000) await new Promise((r) => setTimeout(r, 10));
    // Gone without a read or a write touching it: the purge removed it.
    expect(reader.tier.size).toBe(0);
  });
});
