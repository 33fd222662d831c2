// The bus adapter alone on the 3-node Kafka: what KafkaBus.publish acknowledged is on the topic, every
// change of it, when the broker leading a partition is killed with SIGKILL in the middle of the publishing
// and started again. A publish that failed may be sent again (as the relay does): it may then be there twice.
import { afterAll, describe, expect, inject, it } from 'vitest';
import { KafkaBus } from '../../src/adapters/kafka-bus.js';
import type { Change } from '../../src/domain/entry.js';
import { uniqueName } from '../support/services.js';
import { changesOnTopic, fullIsr, killNode, restartDownNodes, restartNode, topicState } from './kafka.js';

const brokers = inject('kafkaBrokers');
const topic = uniqueName('bus-broker-kill');
let bus: KafkaBus | undefined;

afterAll(async () => {
  await bus?.close();
  await restartDownNodes();
}, 300_000);

describe('KafkaBus on a 3-node Kafka, one broker killed', () => {
  it('keeps every change of every acknowledged publish', async () => {
    bus = await KafkaBus.create({
      brokers: brokers.split(','),
      topic,
      clientId: 'tiercache-cluster-test',
      groupPrefix: `${topic}.`,
      partitions: 3,
      replicationFactor: 3,
      minInsyncReplicas: 2,
    });
    const acknowledged: string[] = [];
    let failures = 0;
    // Sends kafkajs called done though a partition of them went unwritten: caught by the bus, sent again.
    let incomplete = 0;
    let version = 0n;
    let going = true;
    // Like the relay: one publish at a time, a failed one sent again until it goes through.
    const publishing = (async () => {
      while (going) {
        version += 1n;
        // Every partition in every publish, so that a send is in flight to the victim at the kill.
        const changes: Change[] = Array.from({ length: 60 }, (_, i) => ({
          op: 'set',
          key: `k${i}`,
          version,
          value: 'v'.repeat(1000),
          expiresAt: null,
        }));
        for (;;) {
          try {
            await bus!.publish(changes);
            break;
          } catch (error) {
            failures++;
            if (/answered no write/.test(String(error))) incomplete++;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        acknowledged.push(...changes.map((c) => `${c.key}@${c.version}`));
      }
    })();
    // Twice, a different partition's leader each time: whether a send is caught mid-flight is timing.
    for (const partition of [0, 1]) {
      await new Promise((r) => setTimeout(r, 2_000));
      const victim = (await topicState(brokers, topic)).partitions[partition]!.leader;
      await killNode(victim);
      await new Promise((r) => setTimeout(r, 10_000));
      await restartNode(victim);
      await fullIsr(brokers, topic);
    }
    going = false;
    await publishing;

    const onTopic = new Set((await changesOnTopic(brokers, topic)).map((c) => `${c.key}@${c.version}`));
    const missing = acknowledged.filter((a) => !onTopic.has(a));
    console.log(
      `[cluster] bus: ${acknowledged.length} changes acknowledged, ${failures} failed publishes (${incomplete} of them incomplete sends), ${missing.length} missing`,
    );
    expect(missing.slice(0, 20)).toEqual([]);
  });
});
