// One broker of the 3-node Kafka killed with SIGKILL under write load (a writer and two readers as
// processes on the Redis Cluster, the topic created by tiercache with 3 replicas and min.insync.replicas 2),
// then restarted: writes go on being acknowledged and announced through the two brokers left, every
// acknowledged change is on the topic (so every reader's feed has it) and every reader converges, nothing is
// lost, no version goes back; the restarted broker rejoins every partition's in-sync replicas.
import { afterAll, describe, expect, it } from 'vitest';
import { allReady, metric, report, sleep } from '../faults/cluster.js';
import { eventually } from '../support/processes.js';
import { changesOnTopic, fullIsr, killNode, restartDownNodes, restartNode, topicState } from './kafka.js';
import { useTiercacheOnClusters } from './support.js';

const { brokers, topic, processes, observe } = useTiercacheOnClusters('broker-kill', {
  writers: 1,
  readers: 2,
  partitions: 3,
});

afterAll(async () => {
  await restartDownNodes();
}, 300_000);

async function counter(base: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return Number(line?.split(' ').pop() ?? 0);
}

describe('Kafka cluster: one broker of three killed under write load', () => {
  it('created the topic with 3 replicas and min.insync.replicas 2', async () => {
    const { partitions, minInsyncReplicas } = await topicState(brokers, topic);
    expect(partitions).toHaveLength(3);
    for (const p of partitions) expect(p.replicas).toHaveLength(3);
    expect(minInsyncReplicas).toBe('2');
  });

  it('kill -9 the broker leading partition 0: writes are still announced, nothing is lost, it rejoins', async () => {
    const c = processes();
    const writer = c.writers[0]!;
    const keys = Array.from({ length: 30 }, (_, i) => `broker-kill-${i}`);
    const o = observe(keys);
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => c.writers, { loops: 4 });
    await sleep(3_000);

    const before = await topicState(brokers, topic);
    const victim = before.partitions[0]!.leader;
    const publishFailuresBefore = await counter(
      writer.base,
      'tiercache_writer_relay_failures_total',
      'step="publish"',
    );
    await killNode(victim);
    const killedAt = Date.now();

    // With the broker still dead: leadership moves, the ISR shrinks to the two left (still min.insync), and
    // the relay announces through them, so the outbox empties and the readers prove their feeds again.
    await eventually(
      `partitions led by the two brokers left, each with 2 in sync`,
      async () => {
        const { partitions } = await topicState(brokers, topic);
        return partitions.every((p) => p.leader !== victim && p.leader >= 0 && !p.isr.includes(victim))
          ? true
          : undefined;
      },
      120_000,
    );
    await sleep(5_000);
    const ackedWhileDown = [...o.acked.values()].flat().filter((a) => a.at > killedAt).length;
    await stopLoad();
    await eventually(
      'the outbox to drain with a broker down',
      async () => ((await o.outboxEntries()) === 0 ? true : undefined),
      120_000,
    );
    await allReady(c);
    const convergedWhileDownMs = await o.converged(c.readers, killedAt, 120_000);

    await restartNode(victim);
    const restartedAt = Date.now();
    const stopLoadAgain = o.load(() => c.writers, { loops: 4 });
    const rejoinedMs = await fullIsr(brokers, topic);
    await sleep(2_000);
    await stopLoadAgain();
    await eventually(
      'the outbox to drain',
      async () => ((await o.outboxEntries()) === 0 ? true : undefined),
      120_000,
    );
    await allReady(c);
    const recoveryMs = await o.converged(c.readers, restartedAt, 120_000);
    await o.stopSampling();

    // Every acknowledged version is on the topic: each reader's consumer group reads all of it.
    const onTopic = await changesOnTopic(brokers, topic);
    const announced = new Set(onTopic.map((ch) => `${ch.key}@${ch.version}`));
    const acked = [...o.acked.entries()].flatMap(([key, acks]) => acks.map((a) => `${key}@${a.version}`));
    const missing = acked.filter((k) => !announced.has(k));
    const figures = await o.figures('kill -9 one Kafka broker of 3 under load, restart', recoveryMs);
    const publishFailures =
      (await counter(writer.base, 'tiercache_writer_relay_failures_total', 'step="publish"')) -
      publishFailuresBefore;
    report(
      {
        ...figures,
        ackedWhileBrokerDown: ackedWhileDown,
        convergedWhileDownMs,
        rejoinedMs,
        publishFailuresAtKill: publishFailures,
        // Announced more than once: batches in flight at the kill, published again after a failed send.
        announcedTwice: onTopic.length - announced.size,
        backlogAtEnd: await metric(writer.base, 'tiercache_outbox_backlog_entries'),
      },
      'cluster',
    );
    expect(missing.slice(0, 10)).toEqual([]);
    expect(o.problems).toEqual([]);
    expect(figures).toMatchObject({ lost: 0, regressions: 0, staleBeyondBound: 0 });
    expect(ackedWhileDown).toBeGreaterThan(0);
  });
});
