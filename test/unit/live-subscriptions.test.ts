// Live subscriptions on the embedded adapters: what each subscriber is sent (its snapshot, the changes to
// what it watches, fetched invalidations, expiries, a resync after a feed loss) and when it is ended (limits,
// a slow reader, a store that fails, the process stopping). test/integration/subscriptions.test.ts holds the
// same promises on real Redis and Kafka; here each runs in milliseconds, which mutation testing needs.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import type { WriteOp } from '../../src/ports.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import type { ValueEvent } from '../../src/domain/subscription-index.js';
import { metrics } from '../../src/observability.js';
import { Reader } from '../../src/reader/reader.js';
import {
  Connection,
  LiveSubscriptions,
  SubscriptionRefused,
  type Delivery,
  type LiveOptions,
} from '../../src/reader/subscriptions.js';
import { startRelay } from '../support/relay.js';

const open: { close(): unknown }[] = [];

afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
  vi.restoreAllMocks();
});

async function setup(options: Partial<LiveOptions> = {}) {
  const store = new MemoryStore();
  const bus = new LocalBus();
  const reader = await Reader.start(store, bus, {
    instanceId: 'r1',
    memory: { maxEntries: 1000, maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 60_000 },
    maxBatch: 100,
    purgeIntervalMs: 60_000,
    feed: { syncIntervalMs: 1_000_000, maxLagMs: 60_000 },
  });
  // The reader's trust changes come from its feed monitor (tested in reader-trust.test.ts); here the test
  // says when trust comes back.
  const trustListeners: ((trusted: boolean) => void)[] = [];
  const onTrustChange = reader.onTrustChange.bind(reader);
  vi.spyOn(reader, 'onTrustChange').mockImplementation((listener) => {
    trustListeners.push(listener);
    return onTrustChange(listener);
  });
  const live = new LiveSubscriptions(reader, {
    bufferSize: 100,
    slowConsumerMs: 60_000,
    maxPerProcess: 100,
    maxPerConnection: 100,
    maxSnapshotKeys: 100,
    rememberedKeys: 1000,
    ...options,
  });
  let relay = startRelay(store.outbox, bus);
  // Values over 8 bytes do not travel on the feed: they are announced as invalidations.
  const write = (ops: WriteOp[], ttlMs: number | null = null) =>
    store.write(ops, { ttlMs, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 8 });
  open.push(bus, reader, { close: () => relay.close() }, live);

  /** Resolves once the reader has applied a change to `key` (and so routed it to subscriptions). */
  const applied = (key: string) =>
    new Promise<void>((resolve) => {
      const stop = reader.onApplied((changes) => {
        if (changes.some((c) => c.key === key)) {
          stop();
          resolve();
        }
      });
    });
  /** Writes and resolves once the reader has applied the announcement. */
  const set = async (key: string, value: string, ttlMs: number | null = null) => {
    const seen = applied(key);
    const [committed] = await write([{ op: 'set', key, value }], ttlMs);
    await seen;
    return committed!;
  };
  const del = async (key: string) => {
    const seen = applied(key);
    const [committed] = await write([{ op: 'delete', key }]);
    await seen;
    return committed!;
  };
  return {
    store,
    bus,
    reader,
    live,
    write,
    set,
    del,
    trust: () => trustListeners.forEach((listener) => listener(true)),
    stopRelay: () => relay.close(),
    restartRelay: () => (relay = startRelay(store.outbox, bus)),
  };
}

/** The next delivery, or a failure naming what was awaited if none comes within 2 s. */
async function next(sub: AsyncIterator<Delivery>, what = 'an event'): Promise<Delivery | 'done'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no delivery within 2 s: expected ${what}`)), 2000);
  });
  try {
    const result = await Promise.race([sub.next(), timeout]);
    return result.done ? 'done' : result.value;
  } finally {
    clearTimeout(timer);
  }
}

/** A value event in short: `key op value`. */
function short(d: Delivery | 'done'): string {
  if (d === 'done') return 'done';
  if ('ended' in d) return `ended ${d.ended}`;
  return `${d.key} ${d.op} ${d.value ?? '-'}${d.initial ? ' (initial)' : ''}`;
}

async function nextEvent(sub: AsyncIterator<Delivery>, what?: string): Promise<ValueEvent> {
  const d = await next(sub, what);
  if (d === 'done' || 'ended' in d) throw new Error(`expected an event, got ${short(d)}`);
  return d;
}

/** A sample's value on /metrics (0 when it has none yet). */
async function sampled(series: string): Promise<number> {
  const line = (await metrics.render()).split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** Samples of several series at once, to compare before and after. */
async function samples(series: readonly string[]): Promise<number[]> {
  return Promise.all(series.map(sampled));
}

describe('LiveSubscriptions', () => {
  it('sends each set and delete of a watched key, by key or by prefix, with version and expiry; nothing else', async () => {
    const { live, set, del } = await setup();
    const byKey = live.subscribe({ keys: ['a'], prefix: null }, false, new Connection());
    const byPrefix = live.subscribe({ keys: [], prefix: 'p:' }, false, new Connection());
    await set('other', 'x');
    const a1 = await set('a', 'one');
    const p1 = await set('p:1', 'two', 60_000);
    const a2 = await del('a');
    expect(await nextEvent(byKey)).toEqual({
      key: 'a',
      value: 'one',
      version: a1.version,
      op: 'SET',
      initial: false,
      expiresAt: null,
    });
    expect(await nextEvent(byKey)).toEqual({
      key: 'a',
      value: null,
      version: a2.version,
      op: 'DELETE',
      initial: false,
      expiresAt: null,
    });
    const p = await nextEvent(byPrefix);
    expect(p).toMatchObject({ key: 'p:1', value: 'two', version: p1.version, op: 'SET', initial: false });
    expect(p.expiresAt).toBeGreaterThan(Date.now() + 50_000);
    expect(live.size).toBe(2);
  });

  it('refuses past the per-process and per-connection limits, naming each, and frees a closed one at once', async () => {
    const { live } = await setup({ maxPerProcess: 2, maxPerConnection: 1 });
    let idle = 0;
    const first = new Connection(() => idle++);
    const sub = live.subscribe({ keys: ['a'], prefix: null }, false, first);
    expect(() => live.subscribe({ keys: ['b'], prefix: null }, false, first)).toThrow(
      new SubscriptionRefused(
        'this connection already has 1 subscriptions (SUBSCRIPTIONS_PER_CONNECTION); close one first',
      ),
    );
    live.subscribe({ keys: ['b'], prefix: null }, false, new Connection());
    expect(() => live.subscribe({ keys: ['c'], prefix: null }, false, new Connection())).toThrow(
      new SubscriptionRefused(
        'this reader already serves 2 subscriptions (SUBSCRIPTIONS_PER_PROCESS); try another reader or later',
      ),
    );
    expect(first.open).toBe(1);
    await sub.return?.();
    expect([first.open, idle, live.size]).toEqual([0, 1, 1]);
    // Closing again changes nothing.
    await sub.return?.();
    expect([first.open, idle, live.size]).toEqual([0, 1, 1]);
    expect(await next(sub)).toBe('done');
    live.subscribe({ keys: ['c'], prefix: null }, false, first);
    expect(first.open).toBe(1);
  });

  it('stops sending to a subscription its client closed, and to none once every one is closed', async () => {
    const { live, set } = await setup();
    let idle = 0;
    const connection = new Connection(() => idle++);
    const a = live.subscribe({ keys: ['k'], prefix: null }, false, connection);
    const b = live.subscribe({ keys: ['k'], prefix: 'k' }, false, connection);
    await a.return?.();
    // The connection is idle only once its last subscription ends.
    expect([connection.open, idle]).toEqual([1, 0]);
    await set('k', 'v');
    expect(short(await next(b))).toBe('k SET v');
    expect(await next(a)).toBe('done');
    await b.throw?.();
    expect(await next(b)).toBe('done');
    expect([connection.open, idle, live.size]).toEqual([0, 1, 0]);
  });

  it('starts with the current entries of the watched keys (absent ones too), then the changes after them', async () => {
    const { live, set, del, reader } = await setup({ maxSnapshotKeys: 3 });
    const a = await set('a', 'one');
    await set('p:1', 'x');
    await set('p:2', 'y');
    await set('p:3', 'z');
    await del('gone');
    // The prefix's keys come from what the memory tier holds.
    await reader.read(['p:1', 'p:2', 'p:3'], false);
    const sub = live.subscribe({ keys: ['a', 'never', 'gone'], prefix: null }, true, new Connection());
    const initial = [await nextEvent(sub), await nextEvent(sub), await nextEvent(sub)];
    expect(initial).toEqual([
      { key: 'a', value: 'one', version: a.version, op: 'SET', initial: true, expiresAt: null },
      { key: 'never', value: null, version: null, op: 'DELETE', initial: true, expiresAt: null },
      expect.objectContaining({ key: 'gone', value: null, op: 'DELETE', initial: true, expiresAt: null }),
    ]);
    expect(initial[2]?.version).not.toBeNull();
    await set('a', 'two');
    expect(short(await next(sub))).toBe('a SET two');

    // A prefix snapshot holds at most maxSnapshotKeys keys, named ones included.
    const prefixed = live.subscribe({ keys: ['p:9'], prefix: 'p:' }, true, new Connection());
    const keys = [await nextEvent(prefixed), await nextEvent(prefixed), await nextEvent(prefixed)].map(
      (e) => `${e.key}${e.initial ? ' (initial)' : ''}`,
    );
    expect(keys[0]).toBe('p:9 (initial)');
    expect(keys.slice(1).every((k) => /^p:[123] \(initial\)$/.test(k))).toBe(true);
    await set('p:4', 'w');
    expect(short(await next(prefixed))).toBe('p:4 SET w');
  });

  it('holds the changes that arrive while the snapshot is read, and sends them after it, newer only', async () => {
    const { live, set, store } = await setup();
    await set('a', 'one');
    // The snapshot's read waits until the test lets it go; meanwhile "a" changes twice.
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const read = store.read.bind(store);
    vi.spyOn(store, 'read').mockImplementation(async (keys) => {
      await gate;
      return read(keys);
    });
    const sub = live.subscribe({ keys: ['a'], prefix: null }, true, new Connection());
    await set('a', 'two');
    await set('a', 'three');
    expect(await sampled('tiercache_subscription_buffered_events')).toBe(2);
    release();
    // The snapshot read "three" (after both writes): the held "two" and "three" are not newer, so dropped.
    expect(await nextEvent(sub)).toMatchObject({ key: 'a', value: 'three', initial: true });
    await set('a', 'four');
    expect(short(await next(sub))).toBe('a SET four');
  });

  it('fetches a value too large for the feed once for all its subscribers, and sends it', async () => {
    const { live, set, store } = await setup();
    const subs = [1, 2].map(() => live.subscribe({ keys: ['big'], prefix: null }, false, new Connection()));
    const read = vi.spyOn(store, 'read');
    const big = await set('big', 'x'.repeat(100));
    for (const sub of subs) {
      expect(await nextEvent(sub)).toMatchObject({
        key: 'big',
        value: 'x'.repeat(100),
        version: big.version,
        op: 'SET',
        initial: false,
      });
    }
    expect(read).toHaveBeenCalledTimes(1);
  });

  it('sends an invalidated key the store no longer has as the EXPIRE of the announced version', async () => {
    const { live, bus } = await setup();
    const sub = live.subscribe({ keys: ['k'], prefix: null }, false, new Connection());
    await bus.publish([{ op: 'invalidate', key: 'k', version: 42n, expiresAt: null }]);
    expect(await nextEvent(sub)).toEqual({
      key: 'k',
      value: null,
      version: 42n,
      op: 'EXPIRE',
      initial: false,
      expiresAt: null,
    });
  });

  it('ends the subscribers of a key whose invalidated value cannot be read, saying so', async () => {
    const { live, bus, store, set } = await setup();
    const sub = live.subscribe({ keys: ['k'], prefix: null }, false, new Connection());
    const other = live.subscribe({ keys: ['j'], prefix: null }, false, new Connection());
    vi.spyOn(store, 'read').mockRejectedValueOnce(new Error('store down'));
    await bus.publish([{ op: 'invalidate', key: 'k', version: 42n, expiresAt: null }]);
    expect(await next(sub)).toEqual({
      ended: 'UNAVAILABLE',
      message: 'the new value of "k" could not be read; subscribe again',
    });
    expect(await next(sub)).toBe('done');
    await set('j', 'v');
    expect(short(await next(other))).toBe('j SET v');
  });

  it('sends an EXPIRE once a watched value’s expiry passes, for the version that expired', async () => {
    const { live, set } = await setup();
    const sub = live.subscribe({ keys: ['k'], prefix: null }, false, new Connection());
    const committed = await set('k', 'v', 100);
    const first = await nextEvent(sub);
    expect(first).toMatchObject({ op: 'SET', version: committed.version });
    const expired = await nextEvent(sub, 'the EXPIRE, about 100 ms after the write');
    expect(expired).toEqual({
      key: 'k',
      value: null,
      version: committed.version,
      op: 'EXPIRE',
      initial: false,
      expiresAt: null,
    });
    expect(Date.now()).toBeGreaterThan(first.expiresAt!);
  });

  it('sends no EXPIRE for a value replaced before its expiry, nor once nobody watches the key', async () => {
    const { live, set } = await setup();
    const sub = live.subscribe({ keys: ['k', 'j'], prefix: null }, false, new Connection());
    await set('k', 'short', 100);
    await set('k', 'kept');
    await set('j', 'short', 200);
    expect([short(await next(sub)), short(await next(sub)), short(await next(sub))]).toEqual([
      'k SET short',
      'k SET kept',
      'j SET short',
    ]);
    // The EXPIRE of j comes; none of k (replaced) before it or after it.
    expect(short(await next(sub, 'the EXPIRE of j'))).toBe('j EXPIRE -');
    await set('j', 'later');
    expect(short(await next(sub))).toBe('j SET later');

    const gone = live.subscribe({ keys: ['g'], prefix: null }, false, new Connection());
    await set('g', 'short', 100);
    expect(short(await next(gone))).toBe('g SET short');
    await gone.return?.();
    const watcher = live.subscribe({ keys: ['w', 'g'], prefix: null }, false, new Connection());
    await new Promise((resolve) => setTimeout(resolve, 200));
    await set('w', 'v');
    expect(short(await next(watcher))).toBe('w SET v');
  });

  it('after a feed loss, sends what changed meanwhile once the feed is trusted again', async () => {
    const { live, set, write, trust, stopRelay, restartRelay } = await setup();
    const sub = live.subscribe({ keys: ['a', 'b'], prefix: 'p:' }, false, new Connection());
    await set('a', 'one');
    await set('p:1', 'one');
    expect([short(await next(sub)), short(await next(sub))]).toEqual(['a SET one', 'p:1 SET one']);
    // Committed but never announced: only a resync can tell the subscriber.
    await stopRelay();
    await write([
      { op: 'set', key: 'a', value: 'two' },
      { op: 'set', key: 'p:1', value: 'two' },
    ]);
    trust();
    // b was never written: nothing to send for it.
    expect([short(await next(sub)), short(await next(sub))].sort()).toEqual(['a SET two', 'p:1 SET two']);
    restartRelay();
    // The same changes, announced late, are not sent twice.
    await set('a', 'three');
    expect(short(await next(sub))).toBe('a SET three');
  });

  it('ends a subscription whose keys cannot be re-read after a feed loss; a resync with none open reads nothing', async () => {
    const { live, set, store, trust } = await setup();
    const read = vi.spyOn(store, 'read');
    trust();
    expect(read).not.toHaveBeenCalled();
    const sub = live.subscribe({ keys: ['a'], prefix: null }, false, new Connection());
    read.mockRejectedValueOnce(new Error('store down'));
    trust();
    expect(await next(sub)).toEqual({
      ended: 'UNAVAILABLE',
      message: '"a" could not be re-read after a feed loss; subscribe again',
    });
    expect(await next(sub)).toBe('done');
    // The store back, the others are served.
    const other = live.subscribe({ keys: ['z'], prefix: null }, false, new Connection());
    await set('z', 'v');
    expect(short(await next(other))).toBe('z SET v');
  });

  it('ends a subscription whose snapshot cannot be read, saying so', async () => {
    const { live, store } = await setup();
    vi.spyOn(store, 'read').mockRejectedValue(new Error('store down'));
    const sub = live.subscribe({ keys: ['a'], prefix: null }, true, new Connection());
    expect(await next(sub)).toEqual({
      ended: 'UNAVAILABLE',
      message: 'the current values could not be read from the store; subscribe again',
    });
    expect(await next(sub)).toBe('done');
    expect(live.size).toBe(0);
  });

  it('ends a subscriber that falls behind with SLOW_CONSUMER, dropping what waited; others go on', async () => {
    const { live, set } = await setup({ bufferSize: 2 });
    const slow = live.subscribe({ keys: [], prefix: 'k' }, false, new Connection());
    const prompt = live.subscribe({ keys: [], prefix: 'k' }, false, new Connection());
    const received: string[] = [];
    for (let i = 0; i < 10; i++) {
      await set(`k${i}`, 'v');
      received.push(short(await next(prompt)));
    }
    expect(received).toEqual(Array.from({ length: 10 }, (_, i) => `k${i} SET v`));
    const end = await next(slow);
    expect(end).toEqual({
      ended: 'SLOW_CONSUMER',
      message: expect.stringMatching(
        /^this subscription fell behind \([1-9]\d* events unread\); it is closed, subscribe again \(with includeInitial\) to catch up$/,
      ),
    });
    expect(await next(slow)).toBe('done');
    expect(live.size).toBe(1);
  });

  it('on completeAll, ends each subscription after the events already waiting; close stops routing', async () => {
    const { live, set } = await setup();
    const sub = live.subscribe({ keys: ['a', 'b'], prefix: null }, false, new Connection());
    await set('a', 'one');
    await set('b', 'two');
    live.completeAll();
    expect(live.size).toBe(0);
    expect([short(await next(sub)), short(await next(sub)), await next(sub)]).toEqual([
      'a SET one',
      'b SET two',
      'done',
    ]);
    await live.drained(1000);

    const later = live.subscribe({ keys: ['a'], prefix: null }, true, new Connection());
    live.close();
    expect(await next(later)).toBe('done');
  });

  it('waits in drained() until every transport took its last event, or the time is up', async () => {
    const { live, set } = await setup();
    const sub = live.subscribe({ keys: ['a'], prefix: null }, false, new Connection());
    await set('a', 'one');
    live.completeAll();
    let drained = false;
    const waiting = live.drained(5000).then(() => (drained = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(drained).toBe(false);
    await next(sub);
    await next(sub);
    await waiting;
    // Undrained, it gives up at the deadline.
    const stuck = live.subscribe({ keys: ['b'], prefix: null }, false, new Connection());
    await set('b', 'one');
    live.completeAll();
    await live.drained(100);
    expect(short(await next(stuck))).toBe('b SET one');
    await stuck.return?.();
  });

  it('counts on /metrics what it opens, sends by op, times, coalesces and closes by reason', async () => {
    const { live, set, del, bus } = await setup({ bufferSize: 2 });
    const series = [
      'tiercache_subscriptions_opened_total',
      'tiercache_subscription_events_total{op="SET"}',
      'tiercache_subscription_events_total{op="DELETE"}',
      'tiercache_subscription_events_total{op="EXPIRE"}',
      'tiercache_subscription_delivery_ms_count',
      'tiercache_subscription_events_coalesced_total',
      'tiercache_subscriptions_closed_total{reason="client"}',
      'tiercache_subscriptions_closed_total{reason="complete"}',
    ];
    const before = await samples(series);
    await set('a', 'one');
    const sub = live.subscribe({ keys: ['a', 'b', 'gone'], prefix: null }, true, new Connection());
    // Initial events are sent, but not timed: they are no change's delivery.
    expect(short(await next(sub))).toBe('a SET one (initial)');
    expect(short(await next(sub))).toBe('b DELETE - (initial)');
    expect(short(await next(sub))).toBe('gone DELETE - (initial)');
    await set('a', 'two');
    await del('a');
    await bus.publish([{ op: 'invalidate', key: 'gone', version: 42n, expiresAt: null }]);
    expect([short(await next(sub)), short(await next(sub)), short(await next(sub))]).toEqual([
      'a SET two',
      'a DELETE -',
      'gone EXPIRE -',
    ]);
    // Unread, the buffer of two fills: a third change of a waiting key replaces it.
    await set('a', '3');
    await set('b', '3');
    await set('a', '4');
    expect([short(await next(sub)), short(await next(sub))]).toEqual(['a SET 4', 'b SET 3']);
    await sub.return?.();
    const completed = live.subscribe({ keys: ['c'], prefix: null }, false, new Connection());
    live.completeAll();
    expect(await next(completed)).toBe('done');
    expect((await samples(series)).map((n, i) => n - before[i]!)).toEqual([2, 4, 3, 1, 4, 1, 1, 1]);
  });

  it('shows on /metrics the subscriptions open, their index, expiry timers, remembered keys and waiting events', async () => {
    const { live, set } = await setup();
    const gauges = [
      'tiercache_subscriptions_open',
      'tiercache_subscription_index_entries',
      'tiercache_subscription_expiry_timers',
      'tiercache_subscription_remembered_keys',
      'tiercache_subscription_buffered_events',
    ];
    const one = live.subscribe({ keys: ['a', 'b'], prefix: null }, false, new Connection());
    const two = live.subscribe({ keys: ['a'], prefix: 'p:' }, false, new Connection());
    await set('a', 'one', 60_000);
    await set('p:1', 'x');
    // a is waiting in both, p:1 in the second; a has an expiry timer; each remembers what it was sent.
    expect(await samples(gauges)).toEqual([2, 4, 1, 3, 3]);
    await one.return?.();
    await two.return?.();
    expect(await samples(gauges)).toEqual([0, 0, 0, 0, 0]);
  });

  it('routes a feed batch larger than a buffer in slices, so a subscriber that reads promptly keeps up', async () => {
    const { live, bus } = await setup({ bufferSize: 4 });
    const sub = live.subscribe({ keys: [], prefix: 'k' }, false, new Connection());
    const received: string[] = [];
    // Not next(): its 2 s would count from before the publish, which a loaded machine can delay.
    const reading = (async () => {
      while (received.length < 20) {
        const result = await sub.next();
        received.push(short(result.done ? 'done' : result.value));
      }
    })();
    // Three keys in turn: a buffer that filled up would coalesce a waiting key's events into its last.
    const changes = Array.from({ length: 20 }, (_, i) => ({
      op: 'set' as const,
      key: `k${i % 3}`,
      value: `${i}`,
      version: BigInt(i + 1),
      expiresAt: null,
    }));
    await bus.publish(changes);
    await reading;
    expect(received).toEqual(changes.map((c) => `${c.key} SET ${c.value}`));
  });
});
