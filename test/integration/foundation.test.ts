// Proves the ground the cache stands on, against the real services: Redis returns a batch of keys in one
// MGET, and Kafka delivers every message to each of several groups (how readers stay in step) while
// splitting messages between members of one group (why readers must never share a group).
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel, type Admin, type Consumer, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const runId = `${Date.now()}-${randomBytes(4).toString('hex')}`;
const WAIT_MS = 30_000;

describe('the global setup', () => {
  it('exposes the services through inject() and the environment alike', () => {
    expect(inject('redisUrl')).toMatch(/^rediss?:\/\//);
    expect(inject('kafkaBrokers')).not.toBe('');
    expect(process.env.REDIS_URL).toBe(inject('redisUrl'));
    expect(process.env.KAFKA_BROKERS).toBe(inject('kafkaBrokers'));
  });
});

describe('Redis', () => {
  const prefix = `test:foundation:${runId}:`;
  const entries = Array.from(
    { length: 6 },
    (_, i) => [`${prefix}key-${i}`, `value ${i} ✓ ${runId}`] as const,
  );
  let redis: Redis;

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 3 });
  });

  afterAll(async () => {
    await redis?.del(...entries.map(([key]) => key));
    await redis?.quit();
  });

  it('returns several SET keys from one MGET, in order, with null for a missing key', async () => {
    for (const [key, value] of entries) await redis.set(key, value);

    const values = await redis.mget(`${prefix}missing`, ...entries.map(([key]) => key));

    expect(values).toEqual([null, ...entries.map(([, value]) => value)]);
  });
});

/** Re-checks conditions whenever the state they read changes: waiting on events, never on the clock. */
class Watch {
  private readonly waiters = new Set<() => void>();
  private failure: Error | undefined;

  changed(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.changed();
  }

  until(condition: () => boolean, what: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const check = (): void => {
        if (this.failure) finish(this.failure);
        else if (condition()) finish();
      };
      const timer = setTimeout(
        () => finish(new Error(`timed out after ${WAIT_MS / 1000} s waiting for ${what()}`)),
        WAIT_MS,
      );
      this.waiters.add(check);
      check();
    });
  }
}

interface Delivery {
  partition: number;
  value: string;
}

interface Member {
  name: string;
  groupId: string;
  consumer: Consumer;
  /** Partitions of the topic from the member's latest GROUP_JOIN; undefined until it has joined. */
  assignment: number[] | undefined;
  received: Delivery[];
}

describe('Kafka', () => {
  const topic = `test.foundation.${runId}`;
  const partitions = [0, 1, 2];
  // Spread over every partition on purpose, so that any two-way split of partitions splits the messages.
  const messages = Array.from({ length: 30 }, (_, i) => ({
    key: `key-${i}`,
    value: `message-${i}-${runId}`,
    partition: i % partitions.length,
  }));
  const allValues = messages.map((message) => message.value).sort();
  const watch = new Watch();
  const members: Member[] = [];
  let kafka: Kafka;
  let admin: Admin | undefined;
  let producer: Producer | undefined;

  async function join(name: string, groupId: string): Promise<Member> {
    const consumer = kafka.consumer({
      groupId,
      // Fast heartbeats and short fetch waits make a rebalance reach every member in well under a second.
      heartbeatInterval: 500,
      maxWaitTimeInMs: 200,
      sessionTimeout: 10_000,
      rebalanceTimeout: 10_000,
    });
    const member: Member = { name, groupId, consumer, assignment: undefined, received: [] };
    members.push(member);
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      member.assignment = [...(event.payload.memberAssignment[topic] ?? [])].sort();
      watch.changed();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      // Retriable crashes (e.g. a coordinator still loading) make kafkajs restart the consumer by itself.
      if (!event.payload.restart)
        watch.fail(new Error(`consumer ${name} crashed: ${event.payload.error.message}`));
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        member.received.push({ partition, value: String(message.value) });
        watch.changed();
      },
    });
    return member;
  }

  function describeMembers(list: Member[]): string {
    return list
      .map((m) => `${m.name}: assigned ${JSON.stringify(m.assignment)}, received ${m.received.length}`)
      .join('; ');
  }

  const valuesOf = (member: Member): string[] => member.received.map((d) => d.value).sort();

  let broadcastA: Member;
  let broadcastB: Member;
  let sharedOne: Member;
  let sharedTwo: Member;

  beforeAll(async () => {
    kafka = new Kafka({
      clientId: `tiercache-foundation-${runId}`,
      brokers: inject('kafkaBrokers').split(','),
      logLevel: logLevel.ERROR,
      logCreator: () => (entry) => {
        // The connection layer logs every retriable broker reply ("group is rebalancing") as an ERROR,
        // although kafkajs handles it a layer up; real failures still reach us as crashes or rejections.
        if (entry.namespace === 'Connection' && entry.log.message.startsWith('Response')) return;
        console.error(`kafkajs ${entry.namespace}: ${JSON.stringify(entry.log)}`);
      },
    });
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: partitions.length, replicationFactor: 1 }],
    });

    [broadcastA, broadcastB, sharedOne, sharedTwo] = await Promise.all([
      join('broadcast-a', `${topic}.group-a`),
      join('broadcast-b', `${topic}.group-b`),
      join('shared-1', `${topic}.group-shared`),
      join('shared-2', `${topic}.group-shared`),
    ]);

    // Producing before the shared group settles would let one member read everything before the other joins.
    await watch.until(
      () =>
        [broadcastA, broadcastB].every((m) => m.assignment?.join() === partitions.join()) &&
        isSplitOf(partitions, sharedOne.assignment, sharedTwo.assignment),
      () => `all consumers to join with a settled assignment (${describeMembers(members)})`,
    );

    producer = kafka.producer({
      idempotent: true,
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    const metadata = await producer.send({ topic, acks: -1, messages });
    expect(metadata.map((m) => m.partition).sort()).toEqual(partitions);
  });

  afterAll(async () => {
    await Promise.all(members.map((m) => m.consumer.disconnect()));
    await producer?.disconnect();
    if (admin) {
      if (members.length > 0) await admin.deleteGroups([...new Set(members.map((m) => m.groupId))]);
      await admin.deleteTopics({ topics: [topic] });
      await admin.disconnect();
    }
  });

  it('delivers every message to each of two consumers with different group ids', async () => {
    await watch.until(
      () =>
        valuesOf(broadcastA).length >= allValues.length && valuesOf(broadcastB).length >= allValues.length,
      () =>
        `both groups to receive all ${allValues.length} messages (${describeMembers([broadcastA, broadcastB])})`,
    );

    expect(valuesOf(broadcastA)).toEqual(allValues);
    expect(valuesOf(broadcastB)).toEqual(allValues);
  });

  it('splits the messages between two consumers sharing one group id', async () => {
    await watch.until(
      () => valuesOf(sharedOne).length + valuesOf(sharedTwo).length >= allValues.length,
      () =>
        `the shared group to receive all ${allValues.length} messages (${describeMembers([sharedOne, sharedTwo])})`,
    );

    const one = valuesOf(sharedOne);
    const two = valuesOf(sharedTwo);
    expect(one.length).toBeGreaterThan(0);
    expect(two.length).toBeGreaterThan(0);
    expect(one.filter((value) => two.includes(value))).toEqual([]);
    expect([...one, ...two].sort()).toEqual(allValues);
    // Each member read only the partitions the group gave it.
    for (const member of [sharedOne, sharedTwo]) {
      expect(new Set(member.received.map((d) => d.partition))).toEqual(new Set(member.assignment));
    }
  });
});

/** True when two assignments are non-empty, disjoint and together cover every partition. */
function isSplitOf(all: number[], one: number[] | undefined, two: number[] | undefined): boolean {
  if (!one || !two || one.length === 0 || two.length === 0) return false;
  const union = new Set([...one, ...two]);
  return one.length + two.length === all.length && all.every((p) => union.has(p));
}
