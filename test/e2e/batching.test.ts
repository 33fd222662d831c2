// Batching proven on the Redis server: a reader process on a private redis-server (so INFO commandstats
// counts nothing but this test's reads) answers 50 concurrent requests for cold keys: shared keys are fetched
// once (single flight), and the misses of different requests share MGETs (coalescing).
import { Agent, request } from 'node:http';
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
  await store.write(
    Array.from({ length: 1000 }, (_, i) => ({ op: 'set' as const, key: `c${i}`, value: `value-${i}` })),
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

const VALUES = `
  query ($k: [String!]!) {
    values(keys: $k) {
      key
      value
      source
    }
  }
`;

/** The reader's own counts of store reads: MGETs made and keys they carried. */
async function storeReads(): Promise<{ reads: number; keys: number }> {
  const text = await (await fetch(`${reader.base}/metrics`)).text();
  const count = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    reads: count('tiercache_reader_store_reads_total'),
    keys: count('tiercache_reader_store_read_keys_total'),
  };
}

/**
 * A GraphQL POST through `agent`: `flushed` resolves once the whole request is handed to the kernel (it
 * arrives even while the reader is paused), `answer` with the parsed response.
 */
function postGraphQL(
  query: string,
  variables: Record<string, unknown>,
  agent: Agent,
): { flushed: Promise<void>; answer: Promise<{ data: { values: { value: string }[] } }> } {
  const body = JSON.stringify({ query, variables });
  let flushed!: Promise<void>;
  const answer = new Promise<{ data: { values: { value: string }[] } }>((resolve, reject) => {
    const req = request(
      `${reader.base}/graphql`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    flushed = new Promise((resolve) => req.on('finish', resolve));
    req.end(body);
  });
  return { flushed, answer };
}

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
  });

  it('misses of requests arriving together on open connections share MGETs, even with no key in common', async () => {
    // 50 requests for 20 keys each, no key asked twice: single flight cannot help, only coalescing can.
    const keys = (i: number) => Array.from({ length: 20 }, (_, j) => `c${i * 20 + j}`);
    // 50 connections opened beforehand: a server accepts new connections one per event-loop turn, so
    // requests on new connections never share a turn (measured: one MGET each); on open ones they do.
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    try {
      await Promise.all(Array.from({ length: 50 }, () => postGraphQL('{ health { ok } }', {}, agent).answer));
      const readsBefore = await storeReads();
      const before = await commandCalls(redis, 'mget');
      // The reader is paused while all 50 requests are handed to the kernel, so that they wait for it
      // together when it resumes, however loaded this machine is.
      reader.process.kill('SIGSTOP');
      let answers;
      try {
        const sent = Array.from({ length: 50 }, (_, i) => postGraphQL(VALUES, { k: keys(i) }, agent));
        await Promise.all(sent.map((s) => s.flushed));
        reader.process.kill('SIGCONT');
        answers = await Promise.all(sent.map((s) => s.answer));
      } finally {
        reader.process.kill('SIGCONT');
        // Paused, the reader may have lost the proof that its feed is current: the tests after this one
        // need memory in use again.
        await eventually('reader ready again', async () =>
          (await fetch(`${reader.base}/ready`)).status === 200 ? true : undefined,
        );
      }
      const mgets = (await commandCalls(redis, 'mget')) - before;
      answers.forEach((answer, i) =>
        expect(answer.data.values.map((v) => v.value)).toEqual(keys(i).map((k) => `value-${k.slice(1)}`)),
      );
      expect((await storeReads()).keys - readsBefore.keys).toBe(1000);
      console.info(`coalescing: 50 requests × 20 distinct keys → ${mgets} MGET calls on the server`);
      // One MGET per request (50) is what a reader without cross-request batching makes; fewer means some
      // MGET carried the keys of several requests.
      expect(mgets).toBeLessThan(50);
    } finally {
      agent.destroy();
    }
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
