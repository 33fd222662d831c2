// The consistency check on the 3-node Kafka (tiercache on the single Redis until it can use a Redis
// Cluster): two writers (so two relays race for the outbox) and two readers as processes, random sets and
// deletes of a few keys from several loops while every reader is read over and over. Judged by the fault
// suite's observer: no version going back on any reader, nothing acknowledged lost, every reader answering
// within the staleness bound, and all of them converged to what Redis holds at the end.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BOUND_MS, cluster, report, sleep, type Cluster } from '../faults/cluster.js';
import { Observer } from '../faults/observer.js';
import { uniqueName } from '../support/services.js';
import { topicState } from './kafka.js';

const brokers = inject('kafkaBrokers');
const redisUrl = inject('redisUrl');
const topic = uniqueName('consistency');
let c: Cluster;
let observer: Observer | undefined;

beforeAll(async () => {
  c = cluster(
    { redisUrl, brokers },
    { KAFKA_TOPIC: topic, KAFKA_PARTITIONS: '6', KAFKA_REPLICATION_FACTOR: '3' },
  );
  await c.startWriter('w1');
  await Promise.all([c.startWriter('w2'), c.startReader('r1'), c.startReader('r2')]);
}, 300_000);

afterAll(async () => {
  observer?.close();
  await c?.stopAll();
}, 120_000);

describe('consistency on the Kafka cluster', () => {
  it('random writes and deletes from two writers: no regression, nothing lost, every reader converges', async () => {
    const { partitions } = await topicState(brokers, topic);
    expect(partitions.map((p) => p.replicas.length)).toEqual([3, 3, 3, 3, 3, 3]);
    // Few keys, many writes each: concurrent versions of one key from both writers are the point.
    const keys = Array.from({ length: 12 }, (_, i) => `consistency-${i}`);
    const o = (observer = new Observer(keys, BOUND_MS, redisUrl, c.prefix));
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => c.writers, { loops: 6, deletes: true });
    await sleep(20_000);
    await stopLoad();
    const stoppedAt = Date.now();
    const convergedMs = await o.converged(c.readers, stoppedAt, 120_000);
    await o.stopSampling();
    const figures = await o.figures(
      'random sets and deletes, 2 writers, 2 readers, Kafka cluster',
      convergedMs,
    );
    report(figures, 'cluster');
    expect(o.problems).toEqual([]);
    expect(figures).toMatchObject({ lost: 0, regressions: 0, staleBeyondBound: 0 });
    expect(figures.writesAcknowledged).toBeGreaterThan(50);
  });
});
