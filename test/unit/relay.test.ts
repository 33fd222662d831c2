// The relay on the embedded adapters: announcements survive a bus that refuses them for a while, and a
// relay that stops leaves what it did not announce in the outbox for the next one.
import { afterEach, describe, expect, it } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import type { Change } from '../../src/domain/entry.js';
import type { ChangeBus } from '../../src/ports.js';
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
  });
});
