// Live subscriptions on a reader fed by the real Kafka and Redis: every change once and in order, the
// snapshot/delta race forced both ways, invalidations delivered with their value, expiry as an event, a
// feed batch larger than a buffer, a slow subscriber that cannot hold up the others, and one consumer for
// any number of subscribers. Feed loss and resync: test/faults/subscriptions.test.ts (a real broker cut).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisStore } from '../../src/adapters/redis-store.js';
import type { Version } from '../../src/domain/entry.js';
import type { ValueEvent } from '../../src/domain/subscription-index.js';
import type { ChangeBus, ChangeHandler, Subscription } from '../../src/ports.js';
import type { Reader } from '../../src/reader/reader.js';
import { Connection, LiveSubscriptions, type Delivery } from '../../src/reader/subscriptions.js';
import type { Writer } from '../../src/writer/writer.js';
import { HeldStore } from '../support/held-store.js';
import { startPipeline, type Pipeline } from '../support/pipeline.js';
import { uniqueName } from '../support/services.js';

/** The reader's own feed, counting the subscriptions made on it (the real KafkaBus does the rest). */
class CountingBus implements ChangeBus {
  subscriptions = 0;
  constructor(private readonly inner: ChangeBus) {}
  publish = (...args: Parameters<ChangeBus['publish']>) => this.inner.publish(...args);
  messageBytes = (...args: Parameters<ChangeBus['messageBytes']>) => this.inner.messageBytes(...args);
  close = () => this.inner.close();
  subscribe(subscriberId: string, handler: ChangeHandler): Promise<Subscription> {
    this.subscriptions++;
    return this.inner.subscribe(subscriberId, handler);
  }
}

let pipeline: Pipeline;
let reader: Reader;
let writer: Writer;
let writerStore: RedisStore;
let held: HeldStore;
let feed: CountingBus;
let prefix: string;
let live: LiveSubscriptions;
const INLINE_MAX = 32;

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Pulls a subscription's events in the background, as a transport would. */
function collect(iterator: AsyncIterableIterator<Delivery>) {
  const events: Delivery[] = [];
  const finished = (async () => {
    for await (const delivery of iterator) events.push(delivery);
  })();
  const values = () => events.filter((e): e is ValueEvent => !('ended' in e));
  return {
    events,
    values,
    finished,
    /** key@version:op[*initial] of every event so far. */
    trace: () => values().map((e) => `${e.key}@${e.version}:${e.op}${e.initial ? '*' : ''}`),
    stop: () => iterator.return?.(),
  };
}

function open(keys: string[], options: { prefix?: string; includeInitial?: boolean } = {}) {
  return collect(
    live.subscribe(
      { keys, prefix: options.prefix ?? null },
      options.includeInitial ?? false,
      new Connection(),
    ),
  );
}

/** Writes through the real writer and relay, and resolves once the reader applied the announcement. */
async function writeAndApply(key: string, value: string, ttlSeconds: number | null = null): Promise<Version> {
  const applied = new Set<Version>();
  const stop = reader.onApplied((changes) => {
    for (const c of changes) if (c.key === key) applied.add(c.version);
  });
  const [committed] = await writer.setValues([{ key, value }], ttlSeconds);
  const version = committed!.version;
  await until(`the reader to apply ${key}=${value.slice(0, 20)}`, () => applied.has(version));
  stop();
  return version;
}

beforeAll(async () => {
  pipeline = await startPipeline({
    name: 'subs',
    readerStore: (store) => (held = new HeldStore(store)),
    readerBus: (bus) => (feed = new CountingBus(bus)),
    reader: {
      memory: { maxEntries: 1000, maxBytes: 1 << 22, ttlMs: 60_000, negativeTtlMs: 60_000 },
      maxBatch: 500,
      purgeIntervalMs: 60_000,
      feed: { syncIntervalMs: 200, maxLagMs: 4000 },
    },
    inlineValueMaxBytes: INLINE_MAX,
  });
  ({ reader, writer, writerStore, prefix } = pipeline);
  live = new LiveSubscriptions(reader, {
    bufferSize: 50,
    slowConsumerMs: 60_000,
    rememberedKeys: 10_000,
    maxPerConnection: 1000,
    maxPerProcess: 1000,
    maxSnapshotKeys: 1000,
  });
}, 90_000);

afterAll(async () => {
  held?.release();
  live?.close();
  await pipeline?.close();
});

describe('every change, in version order per key', () => {
  it('delivers each version once, by key and by prefix, and not the feed’s replays', async () => {
    const k = `${prefix}order:${uniqueName('k')}`;
    const byKey = open([k]);
    const byPrefix = open([], { prefix: `${prefix}order:` });
    const versions: Version[] = [];
    for (let i = 1; i <= 5; i++)
      versions.push(...(await writer.setValues([{ key: k, value: `v${i}` }], null)).map((c) => c.version));
    const [deleted] = await writer.deleteValues([k]);
    await until('both subscribers to see the delete', () =>
      [byKey, byPrefix].every((s) => s.values().some((e) => e.op === 'DELETE')),
    );
    // The same changes again, straight onto the topic: a replay.
    await pipeline.writerBus.publish(
      versions.map((version, i) => ({ op: 'set', key: k, version, value: `v${i + 1}`, expiresAt: null })),
    );
    const marker = await writeAndApply(k, 'after-replay');
    await until('the marker', () => byKey.values().some((e) => e.version === marker));
    const expected = [
      ...versions.map((v) => `${k}@${v}:SET`),
      `${k}@${deleted!.version}:DELETE`,
      `${k}@${marker}:SET`,
    ];
    expect(byKey.trace()).toEqual(expected);
    await until('the prefix marker', () => byPrefix.values().some((e) => e.version === marker));
    expect(byPrefix.trace()).toEqual(expected);
    await byKey.stop();
    await byPrefix.stop();
  });
});

describe('snapshot then deltas, with no gap and no repeat', () => {
  it.each([
    // The snapshot's late answer is v1, but the memory tier learned v2 meanwhile and answers that instead.
    ['with v2 still in memory', false, (v1: Version, v2: Version) => [`@${v2}:SET*`]],
    // With v2 evicted, the snapshot is the late v1: v2 must follow it, held back until the snapshot is out.
    ['with v2 evicted', true, (v1: Version, v2: Version) => [`@${v1}:SET*`, `@${v2}:SET`]],
  ])(
    'a write committed and applied while the snapshot read is in flight (%s) is neither lost nor repeated',
    async (_name, evict, expectedStart) => {
      const k = `${prefix}race:${uniqueName('k')}`;
      const v1 = await writeAndApply(k, 'v1');
      const fetchedBefore = held.fetched;
      held.holding = true;
      const sub = open([k], { includeInitial: true });
      await until('the snapshot to have read v1 from Redis', () => held.fetched > fetchedBefore);
      const v2 = await writeAndApply(k, 'v2');
      expect(sub.events).toEqual([]); // nothing goes out before the snapshot
      if (evict) reader.tier.clear();
      held.release();
      const v3 = await writeAndApply(k, 'v3');
      await until('v3', () => sub.values().some((e) => e.version === v3));
      expect(sub.trace()).toEqual([...expectedStart(v1, v2), `@${v3}:SET`].map((e) => k + e));
      await sub.stop();
    },
  );

  it('a write the snapshot already read is not sent again when its announcement arrives', async () => {
    const k = `${prefix}race:${uniqueName('k')}`;
    await writeAndApply(k, 'v1');
    await pipeline.stopRelay(); // committed from now on, announced only when the relay is back
    const [committed] = await writer.setValues([{ key: k, value: 'v2' }], null);
    const v2 = committed!.version;
    const sub = open([k, `${k}:absent`], { includeInitial: true });
    await until('the snapshot', () => sub.values().length === 2);
    let announced = false;
    const stop = reader.onApplied((changes) => (announced ||= changes.some((c) => c.version === v2)));
    pipeline.startRelay();
    await until('v2’s announcement to be applied', () => announced);
    stop();
    const v3 = await writeAndApply(k, 'v3');
    await until('v3', () => sub.values().some((e) => e.version === v3));
    expect(sub.trace()).toEqual([`${k}@${v2}:SET*`, `${k}:absent@null:DELETE*`, `${k}@${v3}:SET`]);
    expect(sub.values()[1]).toMatchObject({ value: null, initial: true });
    await sub.stop();
  });
});

describe('values, not just invalidations', () => {
  it('fetches an invalidated value from Redis once for every subscriber', async () => {
    const k = `${prefix}big:${uniqueName('k')}`;
    const subs = Array.from({ length: 5 }, () => open([k]));
    const big = 'x'.repeat(INLINE_MAX * 4);
    const fetchedBefore = held.fetched;
    let invalidated = false;
    const stop = reader.onApplied(
      (changes) => (invalidated ||= changes.some((c) => c.key === k && c.op === 'invalidate')),
    );
    const [committed] = await writer.setValues([{ key: k, value: big }], null);
    await until('every subscriber to get the value', () => subs.every((s) => s.values().length === 1));
    stop();
    expect(invalidated).toBe(true);
    for (const s of subs)
      expect(s.values()[0]).toMatchObject({ key: k, value: big, version: committed!.version, op: 'SET' });
    expect(held.fetched - fetchedBefore).toBe(1);
    for (const s of subs) await s.stop();
  });
});

describe('expiry', () => {
  it('a value written with ttlSeconds is followed by EXPIRE when it expires', async () => {
    const k = `${prefix}ttl:${uniqueName('k')}`;
    const sub = open([k]);
    const version = await writeAndApply(k, 'short-lived', 1);
    await until('EXPIRE', () => sub.values().some((e) => e.op === 'EXPIRE'), 10_000);
    expect(sub.values()).toMatchObject([
      { key: k, value: 'short-lived', version, op: 'SET' },
      { key: k, value: null, version, op: 'EXPIRE' },
    ]);
    expect(await writerStore.read([k])).toEqual([null]);
    await sub.stop();
  });
});

describe('fan-out', () => {
  it('one feed subscription serves every subscriber', async () => {
    const k = `${prefix}fan:${uniqueName('k')}`;
    const subs = Array.from({ length: 200 }, (_, i) =>
      open(i % 2 ? [k] : [], i % 2 ? {} : { prefix: `${prefix}fan:` }),
    );
    const version = await writeAndApply(k, 'to-everyone');
    await until('all 200', () => subs.every((s) => s.values().some((e) => e.version === version)));
    expect(feed.subscriptions).toBe(1);
    for (const s of subs) await s.stop();
  });
});

describe('a feed batch with more keys than a buffer holds', () => {
  it('does not close a subscriber that reads promptly; one that does not read is still closed', async () => {
    const bufferSize = 20;
    const small = new LiveSubscriptions(reader, {
      bufferSize,
      slowConsumerMs: 60_000,
      rememberedKeys: 10_000,
      maxPerConnection: 10,
      maxPerProcess: 10,
      maxSnapshotKeys: 10,
    });
    const base = `${prefix}batch:${uniqueName('k')}:`;
    const keys = Array.from({ length: 300 }, (_, i) => `${base}${i}`);
    const fast = collect(small.subscribe({ keys: [], prefix: base }, false, new Connection()));
    const idle = small.subscribe({ keys: [], prefix: base }, false, new Connection());
    let largest = 0;
    const stop = reader.onApplied((changes) => {
      largest = Math.max(largest, changes.filter((c) => c.key.startsWith(base)).length);
    });
    // One write, one outbox entry, one Kafka send: the reader gets it in a batch per partition.
    const committed = await writer.setValues(
      keys.map((key) => ({ key, value: 'one-batch' })),
      null,
    );
    const final = new Map(committed.map((c) => [c.key, c.version]));
    await until('the reading subscriber to get every key', () => {
      const got = new Map(fast.values().map((e) => [e.key, e.version]));
      return keys.every((key) => got.get(key) === final.get(key)) || fast.events.some((e) => 'ended' in e);
    });
    stop();
    // The batch really was larger than the buffer, even than twice it.
    expect(largest).toBeGreaterThan(2 * bufferSize);
    expect(fast.events.filter((e) => 'ended' in e)).toEqual([]);
    expect(fast.values()).toHaveLength(keys.length);
    const slow = collect(idle);
    await slow.finished;
    expect(slow.events.at(-1)).toMatchObject({ ended: 'SLOW_CONSUMER' });
    await fast.stop();
    small.close();
  });
});

describe('a slow subscriber', () => {
  it('is closed with SLOW_CONSUMER while 10,000 changes reach the others, its buffer bounded', async () => {
    // Buffers larger than the 100 keys watched: a burst coalesces instead of overflowing; being full
    // for 3 s is what makes a subscriber slow here (far beyond any pause of a loaded machine's event loop).
    const slowLive = new LiveSubscriptions(reader, {
      bufferSize: 200,
      slowConsumerMs: 3000,
      rememberedKeys: 10_000,
      maxPerConnection: 10,
      maxPerProcess: 10,
      maxSnapshotKeys: 10,
    });
    const base = `${prefix}slow:${uniqueName('k')}:`;
    const subscribe = (keys: string[], watchPrefix: string | null) =>
      slowLive.subscribe({ keys, prefix: watchPrefix }, false, new Connection());
    // Never pulled: the transport of a client that does not read.
    const slowIterator = subscribe([], base);
    const keys = Array.from({ length: 100 }, (_, i) => `${base}${i}`);
    const fast = collect(subscribe(keys.slice(0, 10), null));
    const fastPrefix = collect(subscribe([], base));
    let last: Version[] = [];
    let rounds = 0;
    // Each round waits until the reader has applied it: unpaced, a writer outruns a loaded machine's
    // consumer by minutes of backlog, and the test would measure that backlog instead of the slow client.
    const applied = new Set<Version>();
    const stopWatching = reader.onApplied((changes) => {
      for (const c of changes) applied.add(c.version);
    });
    const writeRound = async () => {
      const committed = await writer.setValues(
        keys.map((key) => ({ key, value: `r${rounds}` })),
        null,
      );
      rounds++;
      last = committed.map((c) => c.version);
      await until(`round ${rounds} to be applied`, () => last.every((v) => applied.has(v)), 60_000);
    };
    while (rounds < 100) await writeRound();
    // Changes go on until the slow subscriber is found out (its buffer has been full long enough).
    const deadline = Date.now() + 60_000;
    while (slowLive.size > 2 && Date.now() < deadline) await writeRound();
    expect(slowLive.size).toBe(2);
    // The two that read were never closed.
    expect([...fast.events, ...fastPrefix.events].filter((e) => 'ended' in e)).toEqual([]);
    const final = new Map(keys.map((key, i) => [key, last[i]]));
    const latest = (sub: ReturnType<typeof collect>) => {
      const byKey = new Map<string, Version>();
      for (const e of sub.values()) {
        // Per key, versions only rise.
        expect(e.version! > (byKey.get(e.key) ?? 0n)).toBe(true);
        byKey.set(e.key, e.version!);
      }
      return byKey;
    };
    let behind: string[] = [];
    // A loaded machine's Kafka consumer can lag far behind 10,000 changes: what matters is that they come.
    await until(
      'the others to get every key’s last version',
      () => {
        const a = latest(fast);
        const b = latest(fastPrefix);
        behind = keys.filter(
          (key, i) => b.get(key) !== final.get(key) || (i < 10 && a.get(key) !== final.get(key)),
        );
        return behind.length === 0;
      },
      150_000,
    ).catch((error: Error) => {
      const b = latest(fastPrefix);
      const key = behind[0]!;
      throw new Error(
        `${error.message}: ${behind.length} keys behind, e.g. ${key} at ${b.get(key)} of ${final.get(key)}; feed current: ${reader.feedCurrent}`,
      );
    });
    stopWatching();
    expect(fastPrefix.values().length).toBeGreaterThan(100);
    expect(rounds * keys.length).toBeGreaterThanOrEqual(10_000);
    const slow = collect(slowIterator);
    await slow.finished;
    expect(slow.events.at(-1)).toMatchObject({ ended: 'SLOW_CONSUMER' });
    // Dropped at once when closed: it never held more than its buffer, and holds nothing now.
    expect(slow.values()).toEqual([]);
    await fast.stop();
    await fastPrefix.stop();
    slowLive.close();
  }, 300_000);
});
