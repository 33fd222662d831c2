// Live subscriptions across a real feed loss, on a Redis and Kafka of this file's own, seen through the
// official graphql-sse client on a reader process: the Kafka broker killed and restarted while writes go
// on; and the reader stopped while the changes it has not read are deleted from the topic (as retention
// would), so that only the re-synchronisation from Redis can bring them. Either way every subscriber ends
// with every key at Redis's version, and no key's version ever goes backwards or repeats.
import { Redis } from 'ioredis';
import { createClient, type Client } from 'graphql-sse';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/adapters/redis-store.js';
import { eventually } from '../support/processes.js';
import { BOUND_MS, cluster, sleep, type Cluster } from './cluster.js';
import { startDedicated, type Dedicated } from './dedicated.js';
import { Observer } from './observer.js';

const SUBSCRIBE = `subscription($keys: [String!], $prefix: String) {
  valueChanged(keys: $keys, prefix: $prefix, includeInitial: true) { key value version op initial }
}`;

interface Change {
  key: string;
  value: string | null;
  version: string | null;
  op: string;
  initial: boolean;
}

let services: Dedicated;
let c: Cluster;
let redis: Redis;
let store: RedisStore;
const clients: Client[] = [];
const observers: Observer[] = [];

beforeAll(async () => {
  services = await startDedicated(`subscriptions-${process.pid}`);
  c = cluster(services);
  await c.startWriter('w1');
  await c.startReader('r1');
  redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  store = new RedisStore({ redis, prefix: c.prefix });
}, 240_000);

afterAll(async () => {
  for (const client of clients) client.dispose();
  await Promise.all(observers.map((o) => o.close()));
  await c?.stopAll();
  redis?.disconnect();
  await services?.close();
}, 120_000);

/** A subscription through the graphql-sse client, recording every event and any problem it shows. */
function subscribe(variables: { keys?: string[]; prefix?: string }) {
  const client = createClient({ url: `${c.readers[0]!.base}/graphql`, retryAttempts: 0 });
  clients.push(client);
  const events: Change[] = [];
  const problems: string[] = [];
  const last = new Map<string, { version: bigint; op: string }>();
  client.subscribe<{ valueChanged: Change }>(
    { query: SUBSCRIBE, variables },
    {
      next: (result) => {
        if (result.errors) return void problems.push(JSON.stringify(result.errors));
        const change = result.data?.valueChanged;
        if (!change) return;
        events.push(change);
        if (change.version === null) return;
        const version = BigInt(change.version);
        const before = last.get(change.key);
        // Strictly newer, or the EXPIRE of the version just sent: never backwards, never twice.
        const fine =
          !before ||
          version > before.version ||
          (version === before.version && change.op === 'EXPIRE' && before.op !== 'EXPIRE');
        if (!fine)
          problems.push(`${change.key}: ${change.op}@${version} after ${before.op}@${before.version}`);
        last.set(change.key, { version, op: change.op });
      },
      error: (error) => problems.push(`subscription failed: ${String(error)}`),
      complete: () => problems.push('subscription completed by the server'),
    },
  );
  return { events, problems, last };
}

type Subscriber = ReturnType<typeof subscribe>;

/** Waits until every subscriber's last event of every key is Redis's version of it. */
async function converged(subscribers: Subscriber[], keys: string[], timeoutMs: number): Promise<void> {
  let behind = '';
  await eventually(
    'every subscriber at Redis’s version of every key',
    async () => {
      const stored = await store.read(keys);
      for (const [i, sub] of subscribers.entries())
        for (const [k, key] of keys.entries()) {
          const want = stored[k]?.version;
          const got = sub.last.get(key)?.version;
          if (want !== got) {
            behind = `subscriber ${i}: ${key} at ${got} while Redis has ${want}`;
            return undefined;
          }
        }
      return true;
    },
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; e.g. ${behind}`);
  });
}

async function ready(expected: boolean, timeoutMs = 90_000): Promise<void> {
  const reader = c.readers[0]!;
  await eventually(
    `reader ${expected ? 'ready' : 'not ready'}`,
    async () => (((await fetch(`${reader.base}/ready`)).status === 200) === expected ? true : undefined),
    timeoutMs,
  );
}

/** Sets every key to a new value through the writer; returns once all are acknowledged. */
async function writeAll(o: Observer, keys: string[], label: string): Promise<void> {
  const ok = await o.set(
    c.writers[0]!,
    keys.map((key) => ({ key, value: `${label}-${key}` })),
  );
  expect(ok, `a write of ${label} was refused: ${o.refusals.at(-1)}`).toBe(true);
}

function observe(label: string): { o: Observer; keys: string[] } {
  const keys = Array.from({ length: 8 }, (_, i) => `${label}:${i}`);
  const o = new Observer(keys, BOUND_MS, { redisUrl: services.redisUrl }, c.prefix);
  observers.push(o);
  return { o, keys };
}

describe('fault: live subscriptions across a real feed loss', () => {
  it('the Kafka broker killed and restarted while writes go on: every subscriber ends at Redis’s versions', async () => {
    const { o, keys } = observe('broker');
    await writeAll(o, keys, 'before');
    const subscribers = [subscribe({ keys }), subscribe({ prefix: 'broker:' })];
    await converged(subscribers, keys, 60_000);
    await services.killKafka();
    await ready(false);
    // Committed to Redis, waiting in the outbox for a broker.
    await writeAll(o, keys, 'during');
    await o.delete(c.writers[0]!, [keys[0]!]);
    await sleep(1_000);
    await services.startKafka();
    await ready(true);
    await converged(subscribers, keys, 90_000);
    await writeAll(o, keys, 'after');
    await converged(subscribers, keys, 60_000);
    for (const sub of subscribers) expect(sub.problems).toEqual([]);
  });

  it('the reader stopped while its unread changes are deleted from the topic: the resync alone brings them', async () => {
    const { o, keys } = observe('lost');
    await writeAll(o, keys, 'before');
    const subscribers = [subscribe({ keys }), subscribe({ prefix: 'lost:' })];
    await converged(subscribers, keys, 60_000);
    const reader = c.readers[0]!;
    reader.process.kill('SIGSTOP');
    try {
      await writeAll(o, keys, 'unread');
      await o.delete(c.writers[0]!, [keys[1]!]);
      // Announced (the relay empties the outbox only once Kafka has the changes)...
      await eventually(
        'the outbox to drain',
        async () => ((await o.outboxEntries()) === 0 ? true : undefined),
        60_000,
      );
      // ...then gone from the topic before the reader could read them.
      await deleteAllRecords(c.env.KAFKA_TOPIC!);
      // Longer than FEED_MAX_LAG_MS: the reader cannot prove its feed when it wakes.
      await sleep(BOUND_MS);
    } finally {
      reader.process.kill('SIGCONT');
    }
    await converged(subscribers, keys, 90_000);
    await ready(true);
    // And the feed flows again.
    await writeAll(o, keys, 'after');
    await converged(subscribers, keys, 60_000);
    for (const sub of subscribers) expect(sub.problems).toEqual([]);
    expect(subscribers[0]!.events.some((e) => e.value === `unread-${keys[0]}`)).toBe(true);
  });
});

/** Deletes every record the topic holds, as retention would, moving each partition's start to its end. */
async function deleteAllRecords(topic: string): Promise<void> {
  const admin = new Kafka({ brokers: services.brokers.split(','), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    await admin.deleteTopicRecords({
      topic,
      partitions: offsets.map(({ partition, high }) => ({ partition, offset: high })),
    });
  } finally {
    await admin.disconnect();
  }
}
