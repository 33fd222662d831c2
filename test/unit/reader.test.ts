// The reader on the embedded adapters (which pass the same contract suites as Redis and Kafka), with an
// injected clock: bounded staleness, fresh reads and the write → feed → memory path, without sleeping.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import type { ChangeBus, ChangeHandler, Subscription } from '../../src/ports.js';
import { metrics } from '../../src/observability.js';
import { Reader } from '../../src/reader/reader.js';
import { captureLogs, messages } from '../support/logs.js';
import { startRelay } from '../support/relay.js';
import { Writer } from '../../src/writer/writer.js';

/**
 * A LocalBus whose sync barriers (the feed monitor's proofs) can be held, as when the broker is unreachable,
 * and whose proof attempts the test can wait for.
 */
class StallableBus implements ChangeBus {
  readonly inner = new LocalBus();
  stalled = false;
  private readonly held: (() => void)[] = [];
  private onSync: (() => void) | null = null;
  publish = this.inner.publish.bind(this.inner);
  messageBytes = this.inner.messageBytes.bind(this.inner);
  async close(): Promise<void> {
    this.release();
    await this.inner.close();
  }
  /** Resolves when the next proof is attempted (a sync call), held or not. */
  nextSync(): Promise<void> {
    return new Promise((resolve) => (this.onSync = resolve));
  }
  /** Stops holding proofs; those held so far go on to the real barrier. */
  release(): void {
    this.stalled = false;
    for (const go of this.held.splice(0)) go();
  }
  async subscribe(id: string, handler: ChangeHandler): Promise<Subscription> {
    const sub = await this.inner.subscribe(id, handler);
    return {
      sync: (timeoutMs) => {
        this.onSync?.();
        this.onSync = null;
        if (!this.stalled) return sub.sync(timeoutMs);
        return new Promise<void>((resolve, reject) =>
          this.held.push(() => void sub.sync(timeoutMs).then(resolve, reject)),
        );
      },
      close: () => sub.close(),
    };
  }
}

const limits = {
  maxReadKeys: 1000,
  maxWriteEntries: 1000,
  maxKeyBytes: 1024,
  maxValueBytes: 1 << 20,
  maxTtlSeconds: 3600,
};
let now = 1_800_000_000_000;
const clock = { now: () => now };
const open: { close(): Promise<unknown> }[] = [];

async function setup({ syncIntervalMs = 1_000_000 } = {}) {
  const store = new MemoryStore({ clock });
  const bus = new StallableBus();
  const reader = await Reader.start(store, bus, {
    instanceId: 'r1',
    memory: { maxEntries: 1000, maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 60_000 },
    maxBatch: 100,
    purgeIntervalMs: 60_000,
    feed: { syncIntervalMs, maxLagMs: 5000 },
    clock,
  });
  const relay = startRelay(store.outbox, bus);
  const writer = new Writer(store, { limits, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 8 });
  // Held proofs would keep the reader's close() waiting: let them go first.
  open.push({ close: async () => bus.release() }, relay, reader, bus);
  /** Writes through the writer and resolves once the reader has applied the announcement. */
  const write = async (key: string, value: string) => {
    let stop = (): void => undefined;
    const applied = new Promise<void>((resolve) => {
      stop = reader.onApplied((changes) => changes.some((c) => c.key === key) && resolve());
    });
    const [committed] = await writer.setValues([{ key, value }], null);
    await applied;
    stop();
    return committed!;
  };
  return { store, bus, reader, writer, write };
}

/** A sample's value on /metrics (0 when it has none yet). */
async function sampled(series: string): Promise<number> {
  const line = (await metrics.render()).split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

describe('Reader', () => {
  it('answers from the store, then from memory, and follows announced writes in memory', async () => {
    const { reader, write } = await setup();
    expect((await reader.read(['k'], false))[0]).toEqual({
      key: 'k',
      value: null,
      version: null,
      origin: 'redis',
    });
    expect((await reader.read(['k'], false))[0]).toMatchObject({ value: null, origin: 'memory' });
    const v1 = await write('k', 'v1');
    expect((await reader.read(['k'], false))[0]).toEqual({
      key: 'k',
      value: 'v1',
      version: v1.version,
      origin: 'memory',
    });
    const v2 = await write('k', 'v2');
    expect(v2.version).toBeGreaterThan(v1.version);
    expect((await reader.read(['k'], false))[0]).toEqual({
      key: 'k',
      value: 'v2',
      version: v2.version,
      origin: 'memory',
    });
  });

  it('turns a value too large to travel into a miss that refetches the new value', async () => {
    const { reader, write } = await setup();
    await write('big', 'small');
    expect((await reader.read(['big'], false))[0]).toMatchObject({ value: 'small', origin: 'memory' });
    await write('big', 'much larger than eight bytes');
    expect((await reader.read(['big'], false))[0]).toMatchObject({
      value: 'much larger than eight bytes',
      origin: 'redis',
    });
    expect((await reader.read(['big'], false))[0]).toMatchObject({ origin: 'memory' });
  });

  it('fresh reads skip memory', async () => {
    const { reader, write } = await setup();
    await write('k', 'v');
    expect((await reader.read(['k'], false))[0]?.origin).toBe('memory');
    expect((await reader.read(['k'], true))[0]?.origin).toBe('redis');
  });

  it('stops trusting memory while proofs of the feed hang, clears it, and trusts it again after a new proof', async () => {
    // Proofs every ms of real time; the lag is measured on the test's clock, which only the test moves.
    const { reader, write, bus, store } = await setup({ syncIntervalMs: 1 });
    await write('k', 'v1');
    expect((await reader.read(['k'], false))[0]?.origin).toBe('memory');
    expect(reader.feedCurrent).toBe(true);
    bus.stalled = true;
    await bus.nextSync(); // the monitor is attempting a proof, and it hangs
    now += 5001;
    expect(reader.feedCurrent).toBe(false);
    expect(reader.tier.size).toBe(0);
    // Meanwhile a write whose announcement is not applied: the reader must not serve the old value.
    await store.write([{ op: 'set', key: 'k', value: 'v2' }], {
      ttlMs: null,
      tombstoneTtlMs: 1000,
      inlineValueMaxBytes: 65536,
    });
    expect((await reader.read(['k'], false))[0]).toMatchObject({ value: 'v2', origin: 'redis' });
    expect((await reader.read(['k'], false))[0]).toMatchObject({ value: 'v2', origin: 'redis' });
    // No value in memory: at most the version floor of what was answered.
    expect(reader.tier.lookup('k')).toBeUndefined();

    bus.release();
    // The held proof completes, but it was started before the clock moved: too old to count.
    await bus.nextSync();
    expect(reader.feedCurrent).toBe(false);
    // The proof attempted after it completes too, started within maxLagMs: memory is trusted again.
    await bus.nextSync();
    expect(reader.feedCurrent).toBe(true);
    expect((await reader.read(['k'], false))[0]).toMatchObject({ value: 'v2', origin: 'redis' });
    expect((await reader.read(['k'], false))[0]).toMatchObject({ value: 'v2', origin: 'memory' });
  });

  it('answers held keys at once (no promise), only when memory holds every one and the feed is proven', async () => {
    const { reader, write, bus } = await setup();
    const a = await write('a', 'va');
    const b = await write('b', 'b:c:');
    expect(reader.readHeld(['b', 'a', 'b'])).toEqual([
      { key: 'b', value: 'b:c:', version: b.version, origin: 'memory' },
      { key: 'a', value: 'va', version: a.version, origin: 'memory' },
      { key: 'b', value: 'b:c:', version: b.version, origin: 'memory' },
    ]);
    // One key not held: nothing is answered from memory, the caller reads through the batcher.
    expect(reader.readHeld(['a', 'absent'])).toBeUndefined();
    await reader.read(['absent'], false);
    expect(reader.readHeld(['a', 'absent'])).toEqual([
      { key: 'a', value: 'va', version: a.version, origin: 'memory' },
      { key: 'absent', value: null, version: null, origin: 'memory' },
    ]);
    bus.stalled = true;
    now += 5001;
    expect(reader.readHeld(['a'])).toBeUndefined();
  });
  it('holds the feed while a change listener’s promise is pending: the next batch waits (backpressure)', async () => {
    const { store, reader, writer } = await setup();
    const batches: string[][] = [];
    let release = (): void => undefined;
    const stop = reader.onApplied((changes) => {
      batches.push(changes.map((c) => c.key));
      if (batches.length === 1) return new Promise<void>((resolve) => (release = resolve));
    });
    await writer.setValues([{ key: 'first', value: '1' }], null);
    await writer.setValues([{ key: 'second', value: '2' }], null);
    // Both batches are on the bus once the relay has emptied the outbox.
    await vi.waitFor(async () => expect((await store.outbox.backlog()).entries).toBe(0));
    for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([['first']]);
    release();
    await vi.waitFor(() => expect(batches).toEqual([['first'], ['second']]));
    stop();
  });

  it('tells trust listeners of each change as it happens (past one that throws), and counts and logs it', async () => {
    const { reader, bus } = await setup({ syncIntervalMs: 1 });
    const seen: boolean[] = [];
    const stopThrowing = reader.onTrustChange(() => {
      throw new Error('listener bug (test)');
    });
    const stop = reader.onTrustChange((trusted) => seen.push(trusted));
    const changesBefore = await sampled('tiercache_reader_feed_trust_changes_total');
    const logs = captureLogs();
    try {
      bus.stalled = true;
      await bus.nextSync();
      now += 5001;
      expect(reader.feedCurrent).toBe(false);
      expect(seen).toEqual([false]);
      bus.release();
      await bus.nextSync();
      await bus.nextSync();
      expect(reader.feedCurrent).toBe(true);
      expect(seen).toEqual([false, true]);
      stop();
      bus.stalled = true;
      await bus.nextSync();
      now += 5001;
      expect(reader.feedCurrent).toBe(false);
      expect(seen).toEqual([false, true]);
    } finally {
      stopThrowing();
      logs.restore();
    }
    expect(await sampled('tiercache_reader_feed_trust_changes_total')).toBe(changesBefore + 3);
    expect(messages(logs.lines, 'error')).toEqual(Array(3).fill('trust listener failed'));
    const trustLines = logs.lines.filter((l) => l.msg.startsWith('change feed'));
    expect(trustLines.map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'change feed not proven current: memory tier cleared, reading from the store'],
      ['info', 'change feed current: memory tier in use'],
      ['warn', 'change feed not proven current: memory tier cleared, reading from the store'],
    ]);
    expect(trustLines[0]?.lagMs).toBeGreaterThanOrEqual(5001);
  });

  it('shows on /metrics what memory holds, the feed lag, and every change applied and timed', async () => {
    const { reader, write } = await setup();
    const appliedBefore = await sampled('tiercache_reader_changes_applied_total');
    const timedBefore = await sampled('tiercache_reader_propagation_ms_count');
    await write('a', 'x');
    await write('b', 'yz');
    await reader.read(['absent'], false);
    now += 1234;
    expect(await sampled('tiercache_reader_changes_applied_total')).toBe(appliedBefore + 2);
    expect(await sampled('tiercache_reader_propagation_ms_count')).toBe(timedBefore + 2);
    expect(await sampled('tiercache_reader_memory_entries')).toBe(3);
    expect(await sampled('tiercache_reader_memory_bytes')).toBe(reader.tier.bytes);
    expect(reader.tier.bytes).toBe(3 * 64 + 2 + 3 + 6);
    expect(await sampled('tiercache_reader_feed_lag_ms')).toBe(1234);
  });
});
