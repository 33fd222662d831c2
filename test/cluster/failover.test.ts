// A Redis Cluster master killed with SIGKILL under writes: its replica is promoted, the store follows it by
// itself (ioredis refreshes its slot map; nothing restarts tiercache), and with REDIS_MIN_REPLICAS_ACK=1 no
// write that was acknowledged is lost — including writes made while the replica could not take them, which
// a master alone would have acknowledged and the failover would have dropped. The killed node, restarted,
// rejoins as a replica, and writes are acknowledged again.
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisClusterStore, SHARD_TAGS, shardOf } from '../../src/adapters/redis-cluster-store.js';
import { keySlot } from '../../src/adapters/redis-slots.js';
import { ReplicasNotConfirmed, type Committed } from '../../src/ports.js';
import { eventually } from '../support/processes.js';
import { uniqueName } from '../support/services.js';
import { clusterNodes, connectReady, KEEP, serves, useRedisCluster } from './support.js';

/** The replicas each acknowledged write waited for; 0 shows what the test guards against (writes lost). */
const MIN_REPLICAS_ACK = 1;

const cluster = useRedisCluster('failover');

async function clusterState(port: number): Promise<string | undefined> {
  const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0, lazyConnect: true });
  try {
    await client.connect();
    return /cluster_state:(\w+)/.exec(String(await client.call('CLUSTER', 'INFO')))?.[1];
  } finally {
    client.disconnect();
  }
}

describe('Redis Cluster failover', () => {
  it('promotes the replica of a killed master, the store follows by itself, and no acknowledged write is lost', async () => {
    const redisCluster = cluster();
    const first = redisCluster.members[0];
    if (!first) throw new Error('no nodes');
    const nodes = await clusterNodes(first.port);
    // The victim: the master holding the most shards, and its replica.
    const owns = serves;
    const masters = nodes.filter((node) => node.role === 'master');
    const victim = masters
      .map((node) => ({ node, shards: SHARD_TAGS.filter((tag) => owns(node, keySlot(tag))).length }))
      .sort((a, b) => b.shards - a.shards)[0]?.node;
    const replica = nodes.find((node) => node.masterId === victim?.id);
    const replicaMember = redisCluster.members.find((member) => member.port === replica?.port);
    const survivor = redisCluster.members.find(
      (member) => member.port !== victim?.port && member.port !== replica?.port,
    );
    if (!victim || !replica || !replicaMember || !survivor)
      throw new Error(`no master with a replica in ${JSON.stringify(nodes)}`);
    // Keys whose shard lives on the victim, one write each (one shard: atomic).
    const keys = Array.from({ length: 400 }, (_, i) => `f${i}`).filter((key) =>
      owns(victim, keySlot(SHARD_TAGS[shardOf(key)] as string)),
    );
    expect(keys.length).toBeGreaterThan(10);

    const store = new RedisClusterStore({
      cluster: await connectReady(redisCluster.nodes),
      prefix: `${uniqueName('failover')}:`,
      minReplicasAck: MIN_REPLICAS_ACK,
      ownsClient: true,
    });
    const acknowledged = new Map<string, Committed>();
    const outcomes = { acknowledged: 0, unconfirmed: 0, failed: 0 };
    let n = 0;
    const writeOne = async (): Promise<void> => {
      const key = keys[n++ % keys.length] as string;
      try {
        const [committed] = await store.write([{ op: 'set', key, value: `v${n}` }], KEEP);
        if (committed) acknowledged.set(key, committed);
        outcomes.acknowledged++;
      } catch (error) {
        if (error instanceof ReplicasNotConfirmed) outcomes.unconfirmed++;
        else outcomes.failed++;
      }
    };
    try {
      // Before: every write acknowledged.
      for (let i = 0; i < 30; i++) await writeOne();
      expect(outcomes).toEqual({ acknowledged: 30, unconfirmed: 0, failed: 0 });

      // The replica stops taking the stream (stopped, and its link cut by the master: a stopped process's
      // socket would still buffer what the master sends): a master alone would still acknowledge these writes.
      process.kill(replicaMember.pid, 'SIGSTOP');
      try {
        const master = new Redis(victim.port, '127.0.0.1', { maxRetriesPerRequest: 0 });
        await master.call('CLIENT', 'KILL', 'TYPE', 'replica').finally(() => master.disconnect());
        await Promise.all(Array.from({ length: 3 }, writeOne));
        await redisCluster.kill(victim.port);
      } finally {
        process.kill(replicaMember.pid, 'SIGCONT');
      }
      if (MIN_REPLICAS_ACK > 0) expect(outcomes.unconfirmed).toBe(3);

      // The replica is promoted and serves the victim's slots; the cluster is whole again.
      await eventually(
        'the replica to be promoted',
        async () => {
          const seen = await clusterNodes(survivor.port);
          const promoted = seen.find((node) => node.id === replica.id);
          return promoted?.role === 'master' &&
            promoted.slots.length > 0 &&
            (await clusterState(survivor.port)) === 'ok'
            ? true
            : undefined;
        },
        60_000,
      );

      // The same store, never restarted, reaches the promoted master by itself: its writes commit there (with
      // no replica left to confirm them, REDIS_MIN_REPLICAS_ACK=1 reports them unconfirmed).
      const committedBefore = outcomes.acknowledged + outcomes.unconfirmed;
      await eventually(
        'writes committed on the promoted master',
        async () => {
          await writeOne();
          return outcomes.acknowledged + outcomes.unconfirmed > committedBefore ? true : undefined;
        },
        60_000,
      );

      // The killed node, started again on its data, rejoins as the new master's replica: writes are
      // acknowledged again.
      await redisCluster.restart(victim.port);
      const before = outcomes.acknowledged;
      await eventually(
        `writes acknowledged again after the failover (so far ${JSON.stringify(outcomes)})`,
        async () => {
          await writeOne();
          return outcomes.acknowledged >= before + 20 ? true : undefined;
        },
        60_000,
      );
      const rejoined = (await clusterNodes(survivor.port)).find((node) => node.id === victim.id);
      expect(rejoined).toMatchObject({ role: 'slave', masterId: replica.id });

      // Every acknowledged write is there, at its version or a newer one.
      const stored = await store.read([...acknowledged.keys()]);
      const lost = [...acknowledged.values()].filter((committed, i) => {
        const entry = stored[i];
        return !entry || entry.version < committed.version;
      });
      expect(lost).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
