// What the cluster test files share: the project's Redis Cluster, or one of the file's own to kill (started
// before its tests, stopped after), clients that wait for the slot map, the cluster's layout as a node
// reports it, and tiercache processes on both clusters with an observer of them.
import * as path from 'node:path';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, inject } from 'vitest';
import { startRedisCluster, type RunningRedisCluster } from '../../scripts/services/redis.js';
import { DIR } from '../../scripts/services/state.js';
import { connectRedisCluster, waitUntilReady } from '../../src/adapters/redis-cluster-store.js';
import { BOUND_MS, cluster, type Cluster as Processes } from '../faults/cluster.js';
import { Observer } from '../faults/observer.js';
import { uniqueName } from '../support/services.js';

export const KEEP = { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 65536 };

/** Starts a Redis Cluster for this file; the returned function gives it to the tests. */
export function useRedisCluster(label: string): () => RunningRedisCluster {
  let running: RunningRedisCluster | undefined;
  beforeAll(async () => {
    running = await startRedisCluster(path.join(DIR, 'cluster', uniqueName(label)));
  }, 120_000);
  afterAll(async () => {
    await running?.stop();
  });
  return () => {
    if (!running) throw new Error('the Redis Cluster did not start');
    return running;
  };
}

/** The seeds of the cluster project's shared Redis Cluster (test/cluster/global-setup.ts): not to be killed. */
export function sharedClusterNodes(): string[] {
  const nodes = inject('redisClusterNodes');
  if (!nodes)
    throw new Error(
      'no Redis Cluster for this test: run it in the cluster project (npm test -- --project cluster)',
    );
  return nodes.split(',');
}

/** A store client on `nodes` once it has the slot map (it refuses commands before: no offline queue). */
export async function connectReady(nodes: readonly string[]): Promise<Cluster> {
  const cluster = connectRedisCluster(nodes);
  await waitUntilReady(cluster, 10_000);
  return cluster;
}

export interface ClusterNode {
  id: string;
  port: number;
  role: 'master' | 'slave';
  /** The master a replica follows; '-' for a master. */
  masterId: string;
  slots: [number, number][];
}

/** CLUSTER NODES as the node on `port` sees it. */
export async function clusterNodes(port: number): Promise<ClusterNode[]> {
  const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0, lazyConnect: true });
  try {
    await client.connect();
    return String(await client.call('CLUSTER', 'NODES'))
      .trim()
      .split('\n')
      .map((line) => {
        const fields = line.split(' ');
        return {
          id: fields[0] ?? '',
          port: Number((fields[1] ?? '').split('@')[0]?.split(':')[1]),
          role: fields[2]?.includes('master') ? 'master' : 'slave',
          masterId: fields[3] ?? '-',
          slots: fields.slice(8).map((range) => {
            const [from, to = from] = range.split('-').map(Number);
            return [from ?? 0, to ?? 0] as [number, number];
          }),
        };
      });
  } finally {
    client.disconnect();
  }
}

export function serves(node: ClusterNode, slot: number): boolean {
  return node.slots.some(([from, to]) => from <= slot && slot <= to);
}

export interface OnClusters {
  /** The 3-node Kafka's brokers, comma-separated. */
  readonly brokers: string;
  /** The topic the processes create (3 replicas). */
  readonly topic: string;
  readonly processes: () => Processes;
  /** An observer of `keys` on what the processes write; closed after the file. */
  observe(keys: readonly string[]): Observer;
}

/**
 * Writers and readers as processes on the project's Redis Cluster and 3-node Kafka, started before the
 * file's tests (the first writer alone first, so that it creates the topic) and stopped after them.
 */
export function useTiercacheOnClusters(
  label: string,
  shape: { writers: number; readers: number; partitions: number },
): OnClusters {
  const brokers = inject('kafkaBrokers');
  const topic = uniqueName(label);
  const observers: Observer[] = [];
  let c: Processes | undefined;
  beforeAll(async () => {
    const started = cluster(
      { redisClusterNodes: sharedClusterNodes().join(','), brokers },
      { KAFKA_TOPIC: topic, KAFKA_PARTITIONS: String(shape.partitions), KAFKA_REPLICATION_FACTOR: '3' },
    );
    c = started;
    await started.startWriter('w1');
    await Promise.all([
      ...Array.from({ length: shape.writers - 1 }, (_, i) => started.startWriter(`w${i + 2}`)),
      ...Array.from({ length: shape.readers }, (_, i) => started.startReader(`r${i + 1}`)),
    ]);
  }, 300_000);
  afterAll(async () => {
    await Promise.all(observers.map((o) => o.close()));
    await c?.stopAll();
  }, 120_000);
  const processes = (): Processes => {
    if (!c) throw new Error('the tiercache processes did not start');
    return c;
  };
  return {
    brokers,
    topic,
    processes,
    observe(keys) {
      const observer = new Observer(keys, BOUND_MS, processes().redis, processes().prefix);
      observers.push(observer);
      return observer;
    },
  };
}
