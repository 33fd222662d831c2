// The Redis Cluster that scripts/services starts for the cluster suites: 3 masters serving every slot, each
// with one replica in sync, and stopped by the pids it recorded, leaving neither processes nor data behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../scripts/services/processes.js';
import { startRedisCluster, type RunningRedisCluster } from '../../scripts/services/redis.js';
import { DIR } from '../../scripts/services/state.js';
import { uniqueName } from '../support/services.js';

describe('startRedisCluster', () => {
  const dir = path.join(DIR, 'cluster', uniqueName('start'));
  let cluster: RunningRedisCluster | undefined;

  beforeAll(async () => {
    cluster = await startRedisCluster(dir);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('forms 3 masters that serve all 16384 slots, each replicated once, with append-only persistence', async () => {
    if (!cluster) throw new Error('no cluster');
    expect(cluster.nodes).toHaveLength(6);
    const [first] = cluster.members;
    if (!first) throw new Error('no nodes');
    const client = new Redis(first.port, '127.0.0.1');
    try {
      const lines = String(await client.call('CLUSTER', 'NODES'))
        .trim()
        .split('\n');
      const nodes = lines.map((line) => line.split(' '));
      const masters = nodes.filter((fields) => fields[2]?.includes('master'));
      const replicas = nodes.filter((fields) => fields[2]?.includes('slave'));
      expect(masters).toHaveLength(3);
      expect(replicas).toHaveLength(3);
      // Every replica follows a different master.
      expect(new Set(replicas.map((fields) => fields[3]))).toEqual(
        new Set(masters.map((fields) => fields[0])),
      );
      let slots = 0;
      for (const fields of masters) {
        for (const range of fields.slice(8)) {
          const [from, to = from] = range.split('-').map(Number);
          slots += (to ?? 0) - (from ?? 0) + 1;
        }
      }
      expect(slots).toBe(16384);
      expect(await client.call('CONFIG', 'GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    } finally {
      client.disconnect();
    }
  });

  it('stops every node it started and removes its data', async () => {
    if (!cluster) throw new Error('no cluster');
    const pids = cluster.members.map((member) => member.pid);
    await cluster.stop();
    cluster = undefined;
    expect(pids.filter(isAlive)).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
