// What the Redis Cluster test files share: the project's Redis Cluster, or one of the file's own to kill
// (started before its tests, stopped after), clients that wait for the slot map, and the cluster's layout as
// a node reports it.
import * as path from 'node:path';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, inject } from 'vitest';
import { startRedisCluster, type RunningRedisCluster } from '../../scripts/services/redis.js';
import { DIR } from '../../scripts/services/state.js';
import { connectRedisCluster, waitUntilReady } from '../../src/adapters/redis-cluster-store.js';
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
