// The relay on the embedded adapters: announcements survive a bus that refuses them for a while, and a
// relay that stops leaves what it did not announce in the outbox for the next one.
import { afterEach, describe, expect, it } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import type { Change } from '../../src/domain/entry.js';
import type { ChangeBus } from '../../src/ports.js';
import { metrics } from '../../src/observability.js';
import { captureLogs, messages } from '../support/logs.js';
import { startRelay } from '../support/relay.js';

const OPTIONS = { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 1024 };
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A bus that refuses the next `failures` publishes, then behaves. */
function flakyBus(inner: ChangeBus, failures: number): ChangeBus & { attempts: number } {
  const bus = {
    attempts: 0,
    publish: async (changes: readonly Change[]) => {
      bus.attempts++;
      if (bus.attempts <= failures) throw new Error('broker unavailable (test)');
      await inner.publish(changes);
    },
    subscribe: inner.subscribe.bind(inner),
    messageBytes: inner.messageBytes.bind(inner),
    close: inner.close.bind(inner),
  };
  return bus;
}

async function received(bus: ChangeBus, count: number): Promise<Change[]> {
  const seen: Change[] = [];
  let done = (): void => undefined;
  const all = new Promise<void>((resolve) => (done = resolve));
  const sub = await bus.subscribe(`watcher-${Math.random()}`, (changes) => {
    seen.push(...changes);
    if (seen.length >= count) done();
  });
  closers.push(() => sub.close());
  return all.then(() => seen);
}

/** A counter's value on /metrics (0 when it has no sample yet). */
async function counted(series: string): Promise<number> {
  const line = (await metrics.render()).split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('Relay', () => {
  it('keeps retrying a refusing bus and announces every committed change, in order, once it accepts', async () => {
    const store = new MemoryStore();
    const local = new LocalBus();
    const bus = flakyBus(local, 3);
    const arrived = received(local, 3);
    const logs = captureLogs();
    closers.push(() => Promise.resolve(logs.restore()));
    const committed = [
      ...(await store.write([{ op: 'set', key: 'a', value: '1' }], OPTIONS)),
      ...(await store.write(
        [
          { op: 'delete', key: 'b' },
          { op: 'set', key: 'a', value: '2' },
        ],
        OPTIONS,
      )),
    ];
    const relay = startRelay(store.outbox, bus);
    closers.push(
      () => local.close(),
      () => relay.close(),
    );
    const changes = await arrived;
    expect(bus.attempts).toBeGreaterThanOrEqual(4);
    expect(changes.map((c) => [c.op, c.key, c.version])).toEqual(
      committed.map((c) => [c.op, c.key, c.version]),
    );
    await relay.close();
    expect(await store.outbox.size()).toBe(0);
    // The first failure of a run is logged (and counted); the retries after it are not.
    expect(messages(logs.lines, 'error')).toEqual(['relay publish failed; retrying']);
  });

  it('leaves what it could not announce in the outbox when it stops, for the next relay', async () => {
    const store = new MemoryStore();
    const local = new LocalBus();
    const refusing = flakyBus(local, Number.POSITIVE_INFINITY);
    await store.write([{ op: 'set', key: 'k', value: 'v' }], OPTIONS);
    const logs = captureLogs();
    const first = startRelay(store.outbox, refusing, { relayId: 'first' });
    closers.push(() => local.close());
    while (refusing.attempts === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await first.close();
    logs.restore();
    expect(messages(logs.lines, 'error')).toEqual(['relay publish failed; retrying']);
    expect(await store.outbox.size()).toBe(1);
    // The next relay takes the claim over once it is old enough (here: at once).
    const arrived = received(local, 1);
    const next = startRelay(store.outbox, local, { relayId: 'next', reclaimAfterMs: 0 });
    closers.push(() => next.close());
    expect((await arrived).map((c) => c.key)).toEqual(['k']);
  });

  it('sizes publishes by encoded bytes, and sends a change too large for one message as an invalidation', async () => {
    const store = new MemoryStore();
    const local = new LocalBus();
    const sizes: number[] = [];
    const measuring: ChangeBus = {
      publish: async (changes) => {
        sizes.push(changes.reduce((sum, c) => sum + local.messageBytes(c), 0));
        await local.publish(changes);
      },
      subscribe: local.subscribe.bind(local),
      messageBytes: local.messageBytes.bind(local),
      close: local.close.bind(local),
    };
    // 150 raw bytes each, 900 once JSON escapes them: three fit a 1,000-byte bound as raw bytes, one encoded.
    const escaped = '\u0001'.repeat(150);
    const options = { ...OPTIONS, inlineValueMaxBytes: 10_000 };
    await store.write(
      ['a', 'b', 'c'].map((key) => ({ op: 'set' as const, key, value: escaped })),
      options,
    );
    await store.write([{ op: 'set', key: 'huge', value: '\u0001'.repeat(400) }], options);
    await store.write([{ op: 'set', key: 'after', value: 'ok' }], options);
    const tooLargeBefore = await counted('tiercache_writer_changes_too_large_total');
    const logs = captureLogs();
    closers.push(() => Promise.resolve(logs.restore()));
    const arrived = received(local, 5);
    const relay = startRelay(store.outbox, measuring, { maxBatchBytes: 1000 });
    closers.push(
      () => local.close(),
      () => relay.close(),
    );
    const changes = await arrived;
    expect(changes.map((c) => [c.key, c.op])).toEqual([
      ['a', 'set'],
      ['b', 'set'],
      ['c', 'set'],
      ['huge', 'invalidate'],
      ['after', 'set'],
    ]);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1000);
    expect(await counted('tiercache_writer_changes_too_large_total')).toBe(tooLargeBefore + 1);
    const [warning] = logs.lines.filter((l) => l.level === 'warn');
    expect(warning).toMatchObject({
      msg: 'change too large for one bus message; announced as an invalidation',
      key: 'huge',
    });
    expect(warning?.bytes).toBeGreaterThan(1000);
  });

  it('backs off doubling up to its bound, logs the first and every tenth failure, and says when a step succeeds again', async () => {
    const store = new MemoryStore();
    const local = new LocalBus();
    const bus = flakyBus(local, 10);
    await store.write([{ op: 'set', key: 'k', value: 'v' }], OPTIONS);
    const failuresBefore = await counted('tiercache_writer_relay_failures_total{step="publish"}');
    const announcedBefore = await counted('tiercache_writer_changes_announced_total');
    const arrived = received(local, 1);
    const logs = captureLogs();
    closers.push(() => Promise.resolve(logs.restore()));
    const relay = startRelay(store.outbox, bus, { retryDelayMs: 1, maxRetryDelayMs: 4 });
    closers.push(
      () => local.close(),
      () => relay.close(),
    );
    await arrived;
    await relay.close();
    expect(bus.attempts).toBe(11);
    expect(
      logs.lines
        .filter((l) => l.msg.startsWith('relay '))
        .map(({ level, msg, step, attempt, attempts, retryInMs }) => ({
          level,
          msg,
          step,
          attempt,
          attempts,
          retryInMs,
        })),
    ).toEqual([
      { level: 'error', msg: 'relay publish failed; retrying', attempt: 1, retryInMs: 1 },
      { level: 'error', msg: 'relay publish failed; retrying', attempt: 10, retryInMs: 4 },
      { level: 'info', msg: 'relay step succeeded again', step: 'publish', attempts: 11 },
    ]);
    expect(await counted('tiercache_writer_relay_failures_total{step="publish"}')).toBe(failuresBefore + 10);
    expect(await counted('tiercache_writer_changes_announced_total')).toBe(announcedBefore + 1);
  });

  it('publishes at most maxBatch changes at a time, in order, and counts what it announced', async () => {
    const store = new MemoryStore();
    const local = new LocalBus();
    const published: string[][] = [];
    const recording: ChangeBus = {
      publish: async (changes) => {
        published.push(changes.map((c) => c.key));
        await local.publish(changes);
      },
      subscribe: local.subscribe.bind(local),
      messageBytes: local.messageBytes.bind(local),
      close: local.close.bind(local),
    };
    await store.write(
      ['a', 'b', 'c', 'd', 'e'].map((key) => ({ op: 'set' as const, key, value: key })),
      OPTIONS,
    );
    const announcedBefore = await counted('tiercache_writer_changes_announced_total');
    const arrived = received(local, 5);
    const relay = startRelay(store.outbox, recording, { maxBatch: 2 });
    closers.push(
      () => local.close(),
      () => relay.close(),
    );
    await arrived;
    expect(published).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    expect(await counted('tiercache_writer_changes_announced_total')).toBe(announcedBefore + 5);
  });
});
