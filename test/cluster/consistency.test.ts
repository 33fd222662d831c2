// The consistency check on the clusters (tiercache on the Redis Cluster and the 3-node Kafka): two writers
// (so two relays race for the outbox) and two readers as processes, random sets and deletes of a few keys
// from several loops while every reader is read over and over. Judged by the fault suite's observer: no
// version going back on any reader, nothing acknowledged lost, every reader answering within the staleness
// bound, every outbox shard relayed and every reader's feed proven current again, and all of them converged
// to what Redis holds at the end.
import { describe, expect, it } from 'vitest';
import { allReady, report, sleep } from '../faults/cluster.js';
import { eventually } from '../support/processes.js';
import { topicState } from './kafka.js';
import { useTiercacheOnClusters } from './support.js';

const { brokers, topic, processes, observe } = useTiercacheOnClusters('consistency', {
  writers: 2,
  readers: 2,
  partitions: 6,
});

describe('consistency on the Redis Cluster and the Kafka cluster', () => {
  it('random writes and deletes from two writers: no regression, nothing lost, every reader converges', async () => {
    const { partitions } = await topicState(brokers, topic);
    expect(partitions.map((p) => p.replicas.length)).toEqual([3, 3, 3, 3, 3, 3]);
    // Few keys, many writes each: concurrent versions of one key from both writers are the point.
    const keys = Array.from({ length: 12 }, (_, i) => `consistency-${i}`);
    const c = processes();
    const o = observe(keys);
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => c.writers, { loops: 6, deletes: true });
    await sleep(20_000);
    await stopLoad();
    const stoppedAt = Date.now();
    // Converged through the feed, not only through Redis: a reader whose feed proof lapses answers from
    // Redis and stays correct, so an unrelayed outbox shard would pass the checks below without this.
    await eventually(
      'every outbox shard relayed',
      async () => ((await o.outboxEntries()) === 0 ? true : undefined),
      60_000,
    );
    await allReady(c);
    const convergedMs = await o.converged(c.readers, stoppedAt, 120_000);
    await o.stopSampling();
    const figures = await o.figures(
      'random sets and deletes, 2 writers, 2 readers, Redis Cluster + Kafka cluster',
      convergedMs,
    );
    report(figures, 'cluster');
    expect(o.problems).toEqual([]);
    expect(figures).toMatchObject({ lost: 0, regressions: 0, staleBeyondBound: 0 });
    expect(figures.writesAcknowledged).toBeGreaterThan(50);
  });
});
