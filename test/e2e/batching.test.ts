// Batching proven on the Redis server: a reader process on a private redis-server (so INFO commandstats
// counts nothing but this test's reads) answers 50 concurrent requests for 200 cold keys.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/adapters/redis-store.js';
import {
  commandCalls,
  eventually,
  graphql,
  startPrivateRedis,
  startTiercache,
  type Running,
  type RunningTiercache,
} from '../support/processes.js';
import { kafkaBrokers, uniqueName } from '../support/services.js';

const PREFIX = 'batch:';
let redisServer: Running & { url: string };
let redis: Redis;
let reader: RunningTiercache;

beforeAll(async () => {
  redisServer = await startPrivateRedis();
  redis = new Redis(redisServer.url);
  const store = new RedisStore({ redis, prefix: PREFIX });
  await store.write(
    Array.from({ length: 200 }, (_, i) => ({ op: 'set' as const, key: `k${i}`, value: `value-${i}` })),
    { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 65536 },
  );
  // No writer runs here to announce the seed; taken as announced long ago, or the unannounced entry would
  // (rightly) keep the reader from ever trusting its feed.
  const seeded = await store.outbox.claim('seed', { max: 10, blockMs: 0, reclaimAfterMs: 60_000 });
  await store.outbox.ack(seeded.map((e) => e.id));
  reader = await startTiercache(['--mode=reader', `--instance-id=${uniqueName('batch-reader')}`], {
    REDIS_URL: redisServer.url,
    REDIS_KEY_PREFIX: PREFIX,
    KAFKA_BROKERS: kafkaBrokers().join(','),
    KAFKA_TOPIC: uniqueName('batching'),
    NEGATIVE_TTL_MS: '60000',
  });
  await eventually('reader ready', async () =>
    (await fetch(`${reader.base}/ready`)).status === 200 ? true : undefined,
  );
}, 120_000);

afterAll(async () => {
  await reader?.stop();
  redis?.disconnect();
  await redisServer?.stop();
});

/** Request i asks for 20 keys; together the 50 requests ask for each of the 200 keys 5 times. */
const keysOf = (i: number) => Array.from({ length: 20 }, (_, j) => `k${(i * 20 + j) % 200}`);

async function fire(): Promise<{ key: string; value: string; source: string }[][]> {
  return Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const res = await graphql<{ values: { key: string; value: string; source: string }[] }>(
        reader.base,
        `
          query ($k: [String!]!) {
            values(keys: $k) {
              key
              value
              source
            }
          }
        `,
        { k: keysOf(i) },
      );
      return res.data!.values;
    }),
  );
}

describe('read batching, counted on the Redis server', () => {
  it('50 concurrent requests for 200 cold keys share their MGETs, each key fetched once', async () => {
    const before = await commandCalls(redis, 'mget');
    const answers = await fire();
    const mgets = (await commandCalls(redis, 'mget')) - before;
    answers.forEach((values, i) =>
      expect(values.map((v) => v.value)).toEqual(keysOf(i).map((k) => `value-${k.slice(1)}`)),
    );
    // Single flight: the reader fetched each distinct key exactly once, whatever the interleaving.
    const metrics = await (await fetch(`${reader.base}/metrics`)).text();
    expect(metrics).toMatch(/^tiercache_reader_store_read_keys_total 200$/m);
    expect(metrics).toMatch(new RegExp(`^tiercache_reader_store_reads_total ${mgets}$`, 'm'));
    console.info(`batching: 50 requests × 20 keys (200 distinct, cold) → ${mgets} MGET calls on the server`);
    expect(mgets).toBeGreaterThanOrEqual(1);
    // Requests reach the server over several event-loop turns, each turn's misses costing one MGET; the
    // claim is that concurrent requests share them, so there must be far fewer MGETs than requests.
    expect(mgets).toBeLessThanOrEqual(25);
  });

  it('the same 50 requests again are answered from memory with no MGET at all', async () => {
    const before = await commandCalls(redis, 'mget');
    const answers = await fire();
    expect(await commandCalls(redis, 'mget')).toBe(before);
    expect(answers.flat().every((v) => v.source === 'MEMORY')).toBe(true);
  });

  it('a storm of reads for a missing key reaches Redis once', async () => {
    const before = await commandCalls(redis, 'mget');
    const answers = await Promise.all(
      Array.from({ length: 100 }, () =>
        graphql<{ value: { exists: boolean } }>(
          reader.base,
          `
            {
              value(key: "missing") {
                exists
              }
            }
          `,
        ),
      ),
    );
    expect(answers.every((a) => a.data?.value.exists === false)).toBe(true);
    expect((await commandCalls(redis, 'mget')) - before).toBe(1);
  });

  it('answers UNAVAILABLE without crashing while Redis is down, and memory still answers', async () => {
    redis.disconnect();
    await redisServer.stop();
    const res = await graphql(
      reader.base,
      `
        {
          values(keys: ["never-cached-1", "never-cached-2"]) {
            value
          }
        }
      `,
    );
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
    expect(res.errors?.[0]?.message).not.toMatch(/ECONNREFUSED|redis/i);
    // Keys still in memory are answered; the reader itself stays up.
    const hot = await graphql<{ values: { source: string }[] }>(
      reader.base,
      `
        {
          values(keys: ["k1"]) {
            source
          }
        }
      `,
    );
    expect(hot.data?.values).toEqual([{ source: 'MEMORY' }]);
    expect(reader.process.exitCode).toBeNull();
  });
});
