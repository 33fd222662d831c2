// The cache-aside race, forced on the real Redis and Kafka: a reader's fetch reads v1 from Redis, a write
// of v2 is committed, announced and applied, and only then does the fetch's answer land. The late v1 must
// never enter memory, even when v2 was evicted in between.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaBus } from '../../src/adapters/kafka-bus.js';
import { connectRedis, RedisStore } from '../../src/adapters/redis-store.js';
import { Reader } from '../../src/reader/reader.js';
import { HeldStore } from '../support/held-store.js';
import { startRelay } from '../support/relay.js';
import { Writer } from '../../src/writer/writer.js';
import { kafkaBrokers, redisUrl, uniqueName } from '../support/services.js';

const topic = uniqueName('race');
const prefix = `${uniqueName('race')}:`;
const closers: (() => Promise<unknown>)[] = [];
let reader: Reader;
let held: HeldStore;
let writer: Writer;

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Writes through the real writer and resolves once the reader applied the announcement. */
async function writeAndApply(key: string, value: string): Promise<bigint> {
  let seen = false;
  const stop = reader.onApplied(
    (changes) => (seen ||= changes.some((c) => c.key === key && c.op === 'set' && c.value === value)),
  );
  const [committed] = await writer.setValues([{ key, value }], null);
  await until(`the reader to apply ${value}`, () => seen);
  stop();
  return committed!.version;
}

beforeAll(async () => {
  const busOptions = {
    brokers: kafkaBrokers(),
    topic,
    groupPrefix: 'race.',
    partitions: 2,
    replicationFactor: 1,
  };
  const readerRedis = connectRedis(redisUrl());
  const writerRedis = connectRedis(redisUrl());
  const readerBus = await KafkaBus.create({ ...busOptions, clientId: 'race-reader' });
  const writerBus = await KafkaBus.create({ ...busOptions, clientId: 'race-writer' });
  held = new HeldStore(new RedisStore({ redis: readerRedis, prefix }));
  reader = await Reader.start(held, readerBus, {
    instanceId: uniqueName('race-reader'),
    memory: { maxEntries: 100, maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 60_000 },
    maxBatch: 100,
    purgeIntervalMs: 60_000,
    feed: { syncIntervalMs: 500, maxLagMs: 30_000 },
  });
  const writerStore = new RedisStore({ redis: writerRedis, prefix });
  const relay = startRelay(writerStore.outbox, writerBus);
  writer = new Writer(writerStore, {
    limits: {
      maxReadKeys: 1000,
      maxWriteEntries: 1000,
      maxKeyBytes: 1024,
      maxValueBytes: 1 << 20,
      maxTtlSeconds: 60,
    },
    tombstoneTtlMs: 60_000,
    inlineValueMaxBytes: 65536,
  });
  closers.push(
    () => relay.close(),
    async () => writerStore.close(),
    () => reader.close(),
    () => readerBus.close(),
    () => writerBus.close(),
    async () => readerRedis.quit(),
    async () => writerRedis.quit(),
  );
}, 60_000);

afterAll(async () => {
  held?.release();
  for (const close of closers) await close();
});

describe.each([
  ['with v2 still in memory', false],
  ['with v2 evicted before the late fill lands', true],
])('a fetch of v1 that lands after v2 was announced (%s)', (_name, evict) => {
  it('never brings v1 back', async () => {
    const key = uniqueName('k');
    await writeAndApply(key, 'v1');
    reader.tier.clear(); // v1 is no longer in memory: the next read must fetch.
    const fetchedBefore = held.fetched;
    held.holding = true;
    const lateRead = reader.read([key], false);
    await until('the fetch to have read v1 from Redis', () => held.fetched > fetchedBefore);
    const v2 = await writeAndApply(key, 'v2');
    if (evict) reader.tier.clear();
    held.release();
    const [late] = await lateRead;
    // The late read overlapped the write, so either answer is linearizable; what matters is memory.
    expect(['v1', 'v2']).toContain(late?.value);
    const held1 = reader.tier.lookup(key);
    expect(held1?.value).not.toBe('v1');
    const [now] = await reader.read([key], false);
    expect(now).toMatchObject({ value: 'v2', version: v2 });
  });
});
