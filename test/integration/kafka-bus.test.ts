// The Kafka bus on a real broker: the shared ChangeBus contract, then what only Kafka can get wrong — orphaned
// consumer groups, foreign bytes on the topic, and broadcast across partitions to distinct groups.
import { Kafka, logLevel, Partitioners, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaBus, type KafkaBusOptions } from '../../src/adapters/kafka-bus.js';
import { metrics } from '../../src/observability.js';
import { describeBusContract, groupByKey, manyChanges, Received } from '../contract/bus.contract.js';
import { captureLogs, messages } from '../support/logs.js';
import { kafkaBrokers, uniqueName } from '../support/services.js';

const PARTITIONS = 4;
const SYNC_MS = 20_000;

let admin: Admin;
const topics: string[] = [];

beforeAll(async () => {
  admin = new Kafka({
    clientId: 'tiercache-test',
    brokers: kafkaBrokers(),
    logLevel: logLevel.ERROR,
  }).admin();
  await admin.connect();
});

afterAll(async () => {
  await admin.deleteTopics({ topics });
  await admin.disconnect();
});

function busOptions(): KafkaBusOptions {
  const topic = uniqueName('changes');
  topics.push(topic);
  return {
    brokers: kafkaBrokers(),
    topic,
    clientId: 'tiercache-test',
    groupPrefix: `${topic}.`,
    partitions: PARTITIONS,
    replicationFactor: 1,
    // Closing waits for the idle fetch in flight; short fetches keep the many closes here quick.
    fetchMaxWaitMs: 250,
  };
}

describeBusContract('KafkaBus', async () => {
  const bus = await KafkaBus.create(busOptions());
  return { bus, cleanup: () => bus.close() };
});

describe('KafkaBus on a real broker', () => {
  it('deletes the consumer group when a subscription closes', async () => {
    const options = busOptions();
    const bus = await KafkaBus.create(options);
    try {
      const subscriberId = uniqueName('group');
      const groupId = options.groupPrefix + subscriberId;
      const subscription = await bus.subscribe(subscriberId, () => {});
      const groupIds = async (): Promise<string[]> => (await admin.listGroups()).groups.map((g) => g.groupId);
      expect(await groupIds()).toContain(groupId);
      await subscription.close();
      expect(await groupIds()).not.toContain(groupId);
    } finally {
      await bus.close();
    }
  });

  it('gives up on a subscription it cannot prove live, and leaves no group behind', async () => {
    // The topic is made ready first: a bus waits for a new topic only until the same deadline, and a
    // loaded broker can take longer than 0 ms to serve one it just created.
    const ready = busOptions();
    await (await KafkaBus.create(ready)).close();
    const options = { ...ready, liveTimeoutMs: 0 };
    const bus = await KafkaBus.create(options);
    try {
      const subscriberId = uniqueName('never-live');
      const failure = await bus.subscribe(subscriberId, () => {}).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(Error);
      expect(String(failure)).toMatch(/did not become live/);
      expect(String((failure as Error).cause)).toMatch(/timed out after 0 ms: 0 of 4 partitions/);
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId);
      expect(groups).not.toContain(options.groupPrefix + subscriberId);
    } finally {
      await bus.close();
    }
  });

  it('refuses a second subscriber with an id already live in another process, naming the id', async () => {
    const options = busOptions();
    const first = await KafkaBus.create(options);
    const second = await KafkaBus.create({ ...options, inUseWaitMs: 1_500 });
    try {
      const live = new Received();
      const subscription = await first.subscribe('twin', live.handler);
      await expect(second.subscribe('twin', () => undefined)).rejects.toThrow(
        /instance id "twin" is in use: consumer group .*twin has 1 live member/,
      );
      // The first keeps the whole feed: nothing was split.
      await first.publish(manyChanges(20, 5));
      await subscription.sync(SYNC_MS);
      expect(live.changes).toHaveLength(20);
    } finally {
      await second.close();
      await first.close();
    }
  });

  it('skips messages it cannot decode and goes on with the ones after them', async () => {
    const options = busOptions();
    const bus = await KafkaBus.create(options);
    const raw = new Kafka({
      clientId: 'tiercache-test',
      brokers: kafkaBrokers(),
      logLevel: logLevel.ERROR,
    }).producer({
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await raw.connect();
    try {
      const received = new Received();
      const subscription = await bus.subscribe(uniqueName('garbage'), received.handler);
      const garbage = ['not json', '{"op":"set","key":"k"}', '[1,2]', '', null];
      const logs = captureLogs();
      const skippedBefore = await metrics.counter('tiercache_bus_skipped_total', '').value();
      await raw.send({
        topic: options.topic,
        messages: Array.from({ length: PARTITIONS }, (_, partition) =>
          garbage.map((value) => ({ partition, key: 'k', value })),
        ).flat(),
      });
      const changes = manyChanges(20, 8);
      await bus.publish(changes);
      await subscription.sync(SYNC_MS);
      expect(received.byKey()).toEqual(groupByKey(changes));
      expect((await metrics.counter('tiercache_bus_skipped_total', '').value()) - skippedBefore).toBe(
        garbage.length * PARTITIONS,
      );
      logs.restore();
      expect(messages(logs.lines, 'warn')).toEqual(
        Array.from({ length: garbage.length * PARTITIONS }, () => 'skipped an undecodable message'),
      );
    } finally {
      await raw.disconnect();
      await bus.close();
    }
  });

  it('broadcasts every change across partitions to subscribers with different ids', async () => {
    const options = busOptions();
    const bus = await KafkaBus.create(options);
    try {
      const changes = manyChanges(200, 40);
      // The keys must really spread: the producer's own partitioner says where each one goes.
      const partitioner = Partitioners.DefaultPartitioner();
      const partitionMetadata = Array.from({ length: PARTITIONS }, (_, partitionId) => ({
        partitionId,
        leader: 1,
        partitionErrorCode: 0,
        replicas: [1],
        isr: [1],
      }));
      const used = new Set(
        changes.map((c) =>
          partitioner({ topic: options.topic, partitionMetadata, message: { key: c.key, value: null } }),
        ),
      );
      expect(used.size).toBeGreaterThanOrEqual(3);

      const readers = [new Received(), new Received()];
      const subscriptions = await Promise.all(
        readers.map((received, i) => bus.subscribe(uniqueName(`reader${i}`), received.handler)),
      );
      await bus.publish(changes);
      await Promise.all(subscriptions.map((s) => s.sync(SYNC_MS)));
      for (const received of readers) expect(received.byKey()).toEqual(groupByKey(changes));
    } finally {
      await bus.close();
    }
  });
});
